/** The policy sets the resource-policy benchmarks load (bench/resource-policies.ts, bench/cedar.ts). */

/** 10 policies: tenant, owner (one relationship), a forbid on attributes, and permits for other clients. */
export function typicalPolicies(n: number): string {
  const out = [
    `@id("tenant") permit (principal, action == Action::"items:read", resource is Item) when { principal has org && resource in principal.org };`,
    `@id("owner") permit (principal, action == Action::"items:read", resource is Item) when { resource has owner && principal has user && resource.owner == principal.user };`,
    `@id("no-test-env") forbid (principal, action, resource) when { principal.environment == "TEST" };`,
  ];
  for (let i = out.length; i < n; i++)
    out.push(
      `@id("p${i}") permit (principal == Client::"other-${i}", action == Action::"items:read", resource is Item) when { context.method == "GET" };`,
    );
  return out.slice(0, n).join('\n');
}
