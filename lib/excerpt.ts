/**
 * What an error message may show of data: a short excerpt with control and invisible characters escaped, so
 * that a failure (visible to everyone with access to the Temporal UI) never carries more than a few words of
 * a data file, and never a NUL byte, an escape sequence or a bidi override that would garble what follows.
 */
export const EXCERPT_CHARS = 120;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

export function excerpt(text: string | Buffer, max = EXCERPT_CHARS): string {
  const s = Buffer.isBuffer(text) ? text.toString('utf8') : text;
  const head = [...s.slice(0, max * 2)].slice(0, max).join('');
  const safe = head.replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return head.length < s.length ? `${safe}… (${s.length} characters)` : safe;
}
