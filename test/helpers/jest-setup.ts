/**
 * Runs before every test file (jest.config.js setupFiles). Several model tests use tfjs' pure-JS `cpu` backend on
 * purpose, as the reference the fast backends are checked against; its first tensor prints tfjs' advice to install
 * tfjs-node, which this project manages itself (lib/tfjs-node-setup.ts). Only that one message is dropped.
 */
const TFJS_NODE_ADVICE = 'Hi, looks like you are running TensorFlow.js in Node.js';
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (args.some((a) => typeof a === 'string' && a.includes(TFJS_NODE_ADVICE))) return;
  warn(...args);
};
