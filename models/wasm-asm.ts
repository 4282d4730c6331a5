/**
 * A minimal WebAssembly assembler: enough of the binary format (types, one imported shared memory, functions,
 * exports) and of the instruction set (integer/float scalar ops, structured control flow, 128-bit SIMD f32x4) to
 * write the few hot training kernels of simd-kernels.ts as readable instruction lists, with no toolchain at build
 * time and no binary blob in the repository.
 *
 * Code is written as a flat list: an instruction name followed by its immediates, e.g.
 *   ['local.get', 0, 'i32.const', 4, 'i32.add', 'f32.load', 0, 'end'] (memory ops take one offset immediate).
 */

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';
const VALTYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

type Imm = 'none' | 'u32' | 's32' | 'f32' | 'f64' | 'mem' | 'block' | 'lane';
/** [opcode bytes, immediate kind, natural alignment log2 for memory ops] */
const OPS: Record<string, [number[], Imm, number?]> = {
  block: [[0x02], 'block'],
  loop: [[0x03], 'block'],
  if: [[0x04], 'block'],
  else: [[0x05], 'none'],
  end: [[0x0b], 'none'],
  br: [[0x0c], 'u32'],
  br_if: [[0x0d], 'u32'],
  return: [[0x0f], 'none'],
  call: [[0x10], 'u32'],
  drop: [[0x1a], 'none'],
  select: [[0x1b], 'none'],
  'local.get': [[0x20], 'u32'],
  'local.set': [[0x21], 'u32'],
  'local.tee': [[0x22], 'u32'],
  'i32.load': [[0x28], 'mem', 2],
  'f32.load': [[0x2a], 'mem', 2],
  'f64.load': [[0x2b], 'mem', 3],
  'i32.store': [[0x36], 'mem', 2],
  'f32.store': [[0x38], 'mem', 2],
  'f64.store': [[0x39], 'mem', 3],
  'i32.const': [[0x41], 's32'],
  'f32.const': [[0x43], 'f32'],
  'f64.const': [[0x44], 'f64'],
  'i32.eqz': [[0x45], 'none'],
  'i32.eq': [[0x46], 'none'],
  'i32.ne': [[0x47], 'none'],
  'i32.lt_s': [[0x48], 'none'],
  'i32.lt_u': [[0x49], 'none'],
  'i32.gt_s': [[0x4a], 'none'],
  'i32.le_s': [[0x4c], 'none'],
  'i32.ge_s': [[0x4e], 'none'],
  'f32.lt': [[0x5d], 'none'],
  'f32.gt': [[0x5e], 'none'],
  'f32.ge': [[0x60], 'none'],
  'f64.lt': [[0x63], 'none'],
  'f64.gt': [[0x64], 'none'],
  'i32.add': [[0x6a], 'none'],
  'i32.sub': [[0x6b], 'none'],
  'i32.mul': [[0x6c], 'none'],
  'i32.rem_u': [[0x70], 'none'],
  'i32.and': [[0x71], 'none'],
  'i32.or': [[0x72], 'none'],
  'i32.xor': [[0x73], 'none'],
  'i32.shl': [[0x74], 'none'],
  'i32.shr_s': [[0x75], 'none'],
  'i32.shr_u': [[0x76], 'none'],
  'f32.neg': [[0x8c], 'none'],
  'f32.nearest': [[0x90], 'none'],
  'f32.add': [[0x92], 'none'],
  'f32.sub': [[0x93], 'none'],
  'f32.mul': [[0x94], 'none'],
  'f32.div': [[0x95], 'none'],
  'f32.min': [[0x96], 'none'],
  'f32.max': [[0x97], 'none'],
  'f64.add': [[0xa0], 'none'],
  'f64.sub': [[0xa1], 'none'],
  'f64.mul': [[0xa2], 'none'],
  'f64.div': [[0xa3], 'none'],
  'i32.trunc_f32_s': [[0xa8], 'none'],
  'f32.demote_f64': [[0xb6], 'none'],
  'f64.promote_f32': [[0xbb], 'none'],
  'f32.reinterpret_i32': [[0xbe], 'none'],
  'v128.load': [[0xfd, 0x00], 'mem', 4],
  'v128.store': [[0xfd, 0x0b], 'mem', 4],
  'f32x4.splat': [[0xfd, 0x13], 'none'],
  'f32x4.extract_lane': [[0xfd, 0x1f], 'lane'],
  'f32x4.add': [[0xfd, 0xe4, 0x01], 'none'],
  'f32x4.sub': [[0xfd, 0xe5, 0x01], 'none'],
  'f32x4.mul': [[0xfd, 0xe6, 0x01], 'none'],
  'f32x4.ge': [[0xfd, 0x46], 'none'],
  'v128.or': [[0xfd, 0x50], 'none'],
  'v128.any_true': [[0xfd, 0x53], 'none'],
  'i32x4.bitmask': [[0xfd, 0xa4, 0x01], 'none'],
  'i32.ctz': [[0x68], 'none'],
};

export type Code = (string | number)[];

function uleb(n: number, out: number[]): void {
  if (!(Number.isInteger(n) && n >= 0)) throw new Error(`uleb: ${n}`);
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
}

function sleb(n: number, out: number[]): void {
  if (!Number.isInteger(n)) throw new Error(`sleb: ${n}`);
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

/** Encodes an instruction list (see header). */
export function encode(code: Code): number[] {
  const out: number[] = [];
  for (let k = 0; k < code.length; k++) {
    const name = code[k];
    if (typeof name !== 'string') throw new Error(`wasm-asm: expected an instruction at ${k}, got ${name}`);
    const op = OPS[name];
    if (!op) throw new Error(`wasm-asm: unknown instruction '${name}'`);
    out.push(...op[0]);
    const imm = (): number => {
      const v = code[++k];
      if (typeof v !== 'number') throw new Error(`wasm-asm: '${name}' needs a numeric immediate at ${k}`);
      return v;
    };
    switch (op[1]) {
      case 'none':
        break;
      case 'u32':
        uleb(imm(), out);
        break;
      case 's32':
        sleb(imm(), out);
        break;
      case 'f32':
        out.push(...new Uint8Array(Float32Array.of(imm()).buffer));
        break;
      case 'f64':
        out.push(...new Uint8Array(Float64Array.of(imm()).buffer));
        break;
      case 'mem':
        uleb(op[2] as number, out); // alignment hint: the natural one
        uleb(imm(), out); // offset
        break;
      case 'block':
        out.push(0x40); // no result
        break;
      case 'lane':
        out.push(imm());
        break;
    }
  }
  return out;
}

export interface FuncDef {
  name?: string;
  params: ValType[];
  results: ValType[];
  locals: ValType[];
  code: Code;
}

function section(id: number, body: number[], out: number[]): void {
  out.push(id);
  uleb(body.length, out);
  out.push(...body);
}

function vec(items: number[][]): number[] {
  const out: number[] = [];
  uleb(items.length, out);
  for (const i of items) out.push(...i);
  return out;
}

function str(s: string): number[] {
  const b = [...Buffer.from(s, 'utf8')];
  const out: number[] = [];
  uleb(b.length, out);
  return out.concat(b);
}

/**
 * A module importing one shared memory as env.memory (minPages..maxPages) and defining `funcs` (callable from each
 * other by index, exported under their names). With `shared` false: an unshared memory of at least minPages and
 * no maximum (e.g. another module's growable heap).
 */
export function buildModule(funcs: FuncDef[], minPages: number, maxPages: number, shared = true): Uint8Array {
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  section(
    1,
    vec(
      funcs.map((f) => [
        0x60,
        ...vec(f.params.map((t) => [VALTYPE[t]])),
        ...vec(f.results.map((t) => [VALTYPE[t]])),
      ]),
    ),
    out,
  );
  const limits: number[] = [shared ? 0x03 : 0x00]; // shared: min and max; unshared: min only
  uleb(minPages, limits);
  if (shared) uleb(maxPages, limits);
  section(2, vec([[...str('env'), ...str('memory'), 0x02, ...limits]]), out);
  section(
    3,
    vec(
      funcs.map((_, i) => {
        const b: number[] = [];
        uleb(i, b);
        return b;
      }),
    ),
    out,
  );
  const exports = funcs.flatMap((f, i) => {
    if (!f.name) return [];
    const b = [...str(f.name), 0x00];
    uleb(i, b);
    return [b];
  });
  section(7, vec(exports), out);
  section(
    10,
    vec(
      funcs.map((f) => {
        const body: number[] = [];
        // One local declaration per run of equal types.
        const runs: [number, ValType][] = [];
        for (const t of f.locals) {
          if (runs.length > 0 && runs[runs.length - 1][1] === t) runs[runs.length - 1][0]++;
          else runs.push([1, t]);
        }
        uleb(runs.length, body);
        for (const [n, t] of runs) {
          uleb(n, body);
          body.push(VALTYPE[t]);
        }
        body.push(...encode(f.code), 0x0b);
        const sized: number[] = [];
        uleb(body.length, sized);
        return sized.concat(body);
      }),
    ),
    out,
  );
  return Uint8Array.from(out);
}
