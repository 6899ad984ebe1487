/**
 * The pieces every form of the console repeats: a labelled text input, a labelled choice, the Cancel and submit
 * buttons, and the submit handler with its busy flag and error.
 */
import type { ComponentChildren, InputHTMLAttributes, PartialInputHTMLAttributes } from 'preact';
import { useState } from 'preact/hooks';
import { described, Field, Submit } from './form';

/**
 * An `<input>` in a `<Field>`, tied to its hint and error (aria-describedby); the caller holds the value. Other
 * attributes (type, required, pattern, disabled, …) go to the input.
 */
export function TextField({
  label,
  id,
  hint,
  error,
  value,
  onValue,
  ...input
}: {
  label: string;
  id: string;
  hint?: ComponentChildren;
  error?: string | undefined;
  value: string;
  onValue: (value: string) => void;
} & Pick<
  PartialInputHTMLAttributes<HTMLInputElement>,
  'required' | 'disabled' | 'pattern' | 'autoComplete' | 'minLength' | 'maxLength' | 'placeholder'
> & { type?: 'text' | 'email' | 'url' | 'password' }) {
  return (
    <Field label={label} id={id} hint={hint} error={error}>
      <input
        {...described(id, error, hint !== undefined)}
        // preact pairs each input `type` with the ARIA roles it allows; these inputs set no role.
        {...(input as InputHTMLAttributes<HTMLInputElement>)}
        value={value}
        onInput={(e) => onValue(e.currentTarget.value)}
      />
    </Field>
  );
}

/** A `<select>` in a `<Field>`, tied to its hint: one option per value, or per `{ value, label }`. */
export function SelectField({
  label,
  id,
  hint,
  value,
  onValue,
  options,
}: {
  label: string;
  id: string;
  hint?: ComponentChildren;
  value: string;
  onValue: (value: string) => void;
  options: readonly (string | { value: string; label: string })[];
}) {
  return (
    <Field label={label} id={id} hint={hint}>
      <select
        {...described(id, undefined, hint !== undefined)}
        value={value}
        onChange={(e) => onValue(e.currentTarget.value)}
      >
        {options.map((o) =>
          typeof o === 'string' ? (
            <option key={o}>{o}</option>
          ) : (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ),
        )}
      </select>
    </Field>
  );
}

/** A dialog form's Cancel and submit buttons. */
export function FormActions({
  busy,
  onCancel,
  children,
}: {
  busy: boolean;
  onCancel: () => void;
  /** The submit button's label. */
  children: ComponentChildren;
}) {
  return (
    <div class="form-actions">
      <button type="button" class="btn" onClick={onCancel}>
        Cancel
      </button>
      <Submit busy={busy}>{children}</Submit>
    </div>
  );
}

/**
 * A form's submit handler: `run` is awaited with `busy` set (the submit button shows progress); when it throws, its
 * message is the form's `error` and the form can be sent again. On success `busy` stays set: the form is done
 * (its dialog closes, or the page moves on).
 */
export function useSubmit(run: () => Promise<unknown>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await run();
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };
  return { busy, error, submit };
}
