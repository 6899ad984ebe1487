/**
 * Audit log: who changed what and when. The control plane's audit operation is being added in the same release;
 * until the admin API document has it, the page says so instead of guessing at an API.
 */
import { PageHeader, Empty } from '../../ui/states';

export function AuditPage() {
  return (
    <>
      <PageHeader title="Audit log" description="Who changed what and when, with the state before and after." />
      <Empty title="The audit log is not available from this control plane yet">
        This control plane's admin API does not offer an audit log operation. Changes are still recorded in the control
        plane's log output.
      </Empty>
    </>
  );
}
