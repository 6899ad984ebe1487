/**
 * A data table that sorts (click a column header), filters (one text box over the columns' text) and paginates
 * (PAGE_SIZE rows a page). Headers are buttons with aria-sort, so the keyboard and screen readers can sort too.
 */
import type { ComponentChildren } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { Empty } from './states';

export interface Column<T> {
  key: string;
  label: string;
  /** The value sorted and filtered on; omit for a column that does neither. */
  value?: (row: T) => string | number | undefined;
  render?: (row: T) => ComponentChildren;
  class?: string;
}

export const PAGE_SIZE = 20;

export function DataTable<T>({
  rows,
  columns,
  rowKey,
  label,
  empty,
  initialSort,
  pageSize = PAGE_SIZE,
}: {
  rows: readonly T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  /** What the table lists, e.g. "API clients": names the table and its filter. */
  label: string;
  empty: ComponentChildren;
  initialSort?: { key: string; dir: 'asc' | 'desc' };
  pageSize?: number;
}) {
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState(initialSort);
  const [page, setPage] = useState(0);
  const shown = useMemo(() => {
    const q = filter.trim().toLowerCase();
    let out = q
      ? rows.filter((r) =>
          columns.some((c) =>
            String(c.value?.(r) ?? '')
              .toLowerCase()
              .includes(q),
          ),
        )
      : [...rows];
    const col = sort && columns.find((c) => c.key === sort.key);
    if (sort && col?.value) {
      const v = col.value;
      const sign = sort.dir === 'asc' ? 1 : -1;
      out = out.sort((a, b) => {
        const x = v(a) ?? '';
        const y = v(b) ?? '';
        return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))) * sign;
      });
    }
    return out;
  }, [rows, columns, filter, sort]);
  const pages = Math.max(1, Math.ceil(shown.length / pageSize));
  const current = Math.min(page, pages - 1);
  const visible = shown.slice(current * pageSize, (current + 1) * pageSize);
  if (rows.length === 0) return <>{empty}</>;
  return (
    <div class="table-wrap">
      <div class="table-tools">
        <label class="filter">
          <span class="sr-only">Filter {label}</span>
          <input
            type="search"
            placeholder={`Filter ${label.toLowerCase()}…`}
            value={filter}
            onInput={(e) => {
              setFilter(e.currentTarget.value);
              setPage(0);
            }}
          />
        </label>
        <span class="muted small">
          {shown.length === rows.length ? `${rows.length} in all` : `${shown.length} of ${rows.length} match`}
        </span>
      </div>
      <div class="table-scroll">
        <table aria-label={label}>
          <thead>
            <tr>
              {columns.map((c) => {
                const active = sort?.key === c.key;
                return (
                  <th
                    key={c.key}
                    class={c.class}
                    scope="col"
                    aria-sort={active ? (sort!.dir === 'asc' ? 'ascending' : 'descending') : undefined}
                  >
                    {c.value ? (
                      <button
                        type="button"
                        class="sort"
                        onClick={() => setSort({ key: c.key, dir: active && sort!.dir === 'asc' ? 'desc' : 'asc' })}
                      >
                        {c.label}
                        <span aria-hidden="true" class="sort-mark">
                          {active ? (sort!.dir === 'asc' ? '▲' : '▼') : '↕'}
                        </span>
                      </button>
                    ) : (
                      c.label
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {visible.map((r) => (
              <tr key={rowKey(r)}>
                {columns.map((c) => (
                  <td key={c.key} class={c.class} data-label={c.label}>
                    <div class="cell">{c.render ? c.render(r) : String(c.value?.(r) ?? '')}</div>
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {shown.length === 0 && <Empty title={`No ${label.toLowerCase()} match “${filter}”.`} />}
      {pages > 1 && (
        <nav class="pager" aria-label={`${label} pages`}>
          <button type="button" class="btn" disabled={current === 0} onClick={() => setPage(current - 1)}>
            Previous
          </button>
          <span class="muted small">
            Page {current + 1} of {pages}
          </span>
          <button type="button" class="btn" disabled={current >= pages - 1} onClick={() => setPage(current + 1)}>
            Next
          </button>
        </nav>
      )}
    </div>
  );
}
