/**
 * The OAuth metadata MCP clients look for (docs/mcp.md): the protected-resource metadata of a collection's MCP
 * endpoint (RFC 9728), which names the gateway's token endpoint as its authorization server, and that
 * authorization server's own metadata (RFC 8414) with the token endpoint and the token-exchange grant.
 */
import type { IncomingMessage } from 'node:http';
import { TOKEN_PATH } from '../tokens/token-endpoint.ts';

export const PROTECTED_RESOURCE_PATH = '/.well-known/oauth-protected-resource';
export const AUTHORIZATION_SERVER_PATH = '/.well-known/oauth-authorization-server';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/**
 * The origin clients reach the gateway at: the listener's scheme (or a trusted proxy's `X-Forwarded-Proto`) and
 * the Host. The documents are answered with `Cache-Control: no-store` and never shared between Hosts.
 */
export function publicOrigin(req: IncomingMessage, proto: 'http' | 'https', behindTrustedProxy: boolean): string {
  let scheme: string = proto;
  const forwarded = req.headers['x-forwarded-proto'];
  if (behindTrustedProxy && (forwarded === 'http' || forwarded === 'https')) scheme = forwarded;
  return `${scheme}://${req.headers.host ?? 'localhost'}`;
}

/** RFC 9728 §2: the MCP endpoint `resource` and the authorization server (the gateway, at `issuerPrefix`). */
export function protectedResourceMetadata(
  origin: string,
  mcpPath: string,
  issuerPrefix: string,
  serverName: string,
): Record<string, unknown> {
  return {
    resource: `${origin}${mcpPath}`,
    authorization_servers: [`${origin}${issuerPrefix}`],
    bearer_methods_supported: ['header'],
    resource_name: serverName,
    resource_documentation: 'https://gatehouse.dev/docs/mcp',
  };
}

/** RFC 8414 §2: only the token endpoint, for the token-exchange grant (API keys are presented as they are). */
export function authorizationServerMetadata(origin: string, issuerPrefix: string): Record<string, unknown> {
  return {
    issuer: `${origin}${issuerPrefix}`,
    token_endpoint: `${origin}${issuerPrefix}${TOKEN_PATH}`,
    grant_types_supported: [TOKEN_EXCHANGE],
    token_endpoint_auth_methods_supported: ['none'],
    response_types_supported: [],
  };
}

/** The URL of a resource's RFC 9728 metadata: the well-known path inserted before the resource's path. */
export function metadataUrl(origin: string, mcpPath: string): string {
  return `${origin}${PROTECTED_RESOURCE_PATH}${mcpPath}`;
}
