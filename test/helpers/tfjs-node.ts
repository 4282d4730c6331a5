import { findProjectRoot } from '../../lib/config';
import { probeTfjsNode } from '../../lib/tfjs-node-setup';
import { tfjsNodeDisabled } from '../../lib/tfjs-node-switch';

/**
 * Whether models/backend.ts can use tfjs-node here: `npm run setup` built it (probed in a child process, once per
 * test file) and RECFORGE_TFJS_NODE=off does not switch it off. CI sets RECFORGE_REQUIRE_TFJS_NODE=1 so a setup
 * that silently stopped building it fails the run instead of skipping the tfjs-node tests.
 */
export const tfjsNodeProbe: ReturnType<typeof probeTfjsNode> = tfjsNodeDisabled()
  ? { ok: false, error: 'RECFORGE_TFJS_NODE=off' }
  : probeTfjsNode(findProjectRoot(__dirname));
export const tfjsNodeRequired = process.env.RECFORGE_REQUIRE_TFJS_NODE === '1';
