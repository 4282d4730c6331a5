/**
 * The operator's switch for libtensorflow: RECFORGE_TFJS_NODE=off keeps tfjs-node out of backend selection and makes
 * `npm run setup` skip building it. No tfjs imports here, so setup can read it without loading tfjs-core.
 */
export function tfjsNodeDisabled(): boolean {
  return (process.env.RECFORGE_TFJS_NODE ?? '').toLowerCase() === 'off';
}
