/**
 * A time-series chart with uPlot, loaded with the Analytics page only (keeps it out of the first page's JavaScript).
 * uPlot positions its parts through element.style (CSSOM), which a `style-src 'self'` policy allows; its stylesheet
 * is bundled as a file.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
}

export default function Chart({
  title,
  times,
  series,
  unit,
}: {
  title: string;
  /** Unix seconds. */
  times: number[];
  series: Series[];
  unit?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current!;
    const width = () => Math.max(260, el.clientWidth);
    const plot = new uPlot(
      {
        width: width(),
        height: 180,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [
          { stroke: '#64748b', grid: { stroke: '#eef2f7' } },
          {
            stroke: '#64748b',
            grid: { stroke: '#eef2f7' },
            size: 70,
            values: (_u, ticks) => ticks.map((t) => `${+t.toFixed(2)}${unit ?? ''}`),
          },
        ],
        series: [
          {},
          ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, points: { show: true, size: 5 } })),
        ],
      },
      [times, ...series.map((s) => s.values)],
      el,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: width(), height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [times, series, unit]);
  return (
    <figure class="card chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title} chart`} />
    </figure>
  );
}
