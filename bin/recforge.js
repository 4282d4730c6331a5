#!/usr/bin/env node
'use strict';
// The `recforge` command: the compiled CLI (dist/cli/main.js), rebuilt first only if a source changed (bin/build.js).
const { ensureBuilt } = require('./build.js');

// libtensorflow (tfjs-node) prints its oneDNN/CPU-feature banner at load unless this is set before it loads.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';

if (!ensureBuilt()) process.exit(1);
require('../dist/cli/main.js')
  .main(process.argv.slice(2))
  .then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`recforge: ${err && err.stack ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
