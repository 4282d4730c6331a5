#!/usr/bin/env node
'use strict';
// The `recforge` command: the compiled CLI (dist/cli/main.js), rebuilt first only if a source changed (bin/build.js).
const { ensureBuilt } = require('./build.js');

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
