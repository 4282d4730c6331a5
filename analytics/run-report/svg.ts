import * as vega from 'vega';
import { compile } from 'vega-lite';
import type { ChartSpec } from './charts';

/**
 * Compiles a Vega-Lite spec and renders it to a static SVG string on the server (headless vega View, no
 * canvas, no DOM): the report page needs no script to show its charts. Charts carry their data inline, so the
 * loader never fetches; a spec that asks for a URL fails instead of reaching out.
 */
const NO_FETCH = vega.loader();
NO_FETCH.load = async (uri: string) => {
  throw new Error(`report charts carry their data inline; refusing to load ${uri}`);
};

export async function renderSvg(spec: ChartSpec): Promise<string> {
  const compiled = compile(spec).spec;
  // Vega reports a failed load as a log line and renders an empty chart: refuse such a spec up front instead.
  const remote = (compiled.data ?? []).find((d) => 'url' in d);
  if (remote)
    throw new Error(
      `report charts carry their data inline; refusing to load ${String((remote as { url: unknown }).url)}`,
    );
  const view = new vega.View(vega.parse(compiled), {
    renderer: 'none',
    loader: NO_FETCH,
  });
  view.logLevel(vega.Error);
  try {
    await view.runAsync();
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders each spec (null = nothing to draw), keyed like the input. */
export async function renderAll<K extends string>(
  specs: Record<K, ChartSpec | null>,
): Promise<Record<K, string | null>> {
  const out = {} as Record<K, string | null>;
  for (const [key, spec] of Object.entries(specs) as Array<[K, ChartSpec | null]>) {
    out[key] = spec ? await renderSvg(spec) : null;
  }
  return out;
}
