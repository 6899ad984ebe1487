/**
 * Modal dialogs on the native <dialog> element (focus moves in and is kept there, Escape closes, focus returns),
 * and a confirmation that says what will happen before a destructive action runs, with progress while it does.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Alert } from './states';

export function Modal({
  title,
  onClose,
  children,
  wide,
}: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current!;
    const opener = document.activeElement as HTMLElement | null;
    d.showModal();
    return () => {
      if (d.open) d.close();
      opener?.focus?.();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={wide ? 'modal modal-wide' : 'modal'}
      aria-labelledby="modal-title"
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <div class="modal-head">
        <h2 id="modal-title">{title}</h2>
        <button type="button" class="btn btn-ghost" aria-label="Close" onClick={onClose}>
          ✕
        </button>
      </div>
      <div class="modal-body">{children}</div>
    </dialog>
  );
}

export function Confirm({
  title,
  children,
  confirmLabel,
  onConfirm,
  onClose,
  danger = true,
}: {
  title: string;
  /** What will happen, in words: "Deleting gateway x deactivates the 2 collections deployed to it." */
  children: ComponentChildren;
  confirmLabel: string;
  onConfirm: () => Promise<void>;
  onClose: () => void;
  danger?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  return (
    <Modal title={title} onClose={busy ? () => {} : onClose}>
      <div class="confirm-text">{children}</div>
      {error && <Alert>{error}</Alert>}
      <div class="form-actions">
        <button type="button" class="btn" onClick={onClose} disabled={busy}>
          Cancel
        </button>
        <button
          type="button"
          class={danger ? 'btn btn-danger' : 'btn btn-primary'}
          disabled={busy}
          aria-busy={busy}
          onClick={async () => {
            setBusy(true);
            setError(undefined);
            try {
              await onConfirm();
              onClose();
            } catch (e) {
              setError(e instanceof Error ? e.message : String(e));
              setBusy(false);
            }
          }}
        >
          {busy && <span class="spinner spinner-inline" aria-hidden="true" />}
          {busy ? 'Working…' : confirmLabel}
        </button>
      </div>
    </Modal>
  );
}
