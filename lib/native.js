'use strict';
// The compiled addon. `npm install` builds it from source (scripts/build-native.js).
const path = require('node:path');

let binding;
try {
  binding = require(path.join(__dirname, '..', 'ambient.node'));
} catch (cause) {
  const err = new Error(
    'ambient: the native addon (ambient.node) is missing or failed to load. ' +
    'It is compiled from source on `npm install`, which needs a Rust toolchain (cargo); ' +
    'run `npm run build` in the ambient package to rebuild it.', { cause });
  err.code = 'ERR_AMBIENT_NATIVE_LOAD';
  throw err;
}

module.exports = binding;
