'use strict';
// Node-shaped argument errors: same class, `code` and message text as Node's
// own validators, so code that matches on them keeps working after switching
// from node:async_hooks to ambient.
const { inspect } = require('node:util');

function describeReceived(value) {
  if (value == null) return ` Received ${value}`;
  if (typeof value === 'function') return ` Received function ${value.name}`;
  if (typeof value === 'object') {
    if (value.constructor?.name) return ` Received an instance of ${value.constructor.name}`;
    return ` Received ${inspect(value, { depth: -1 })}`;
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return ` Received type ${typeof value} (${shown})`;
}

function invalidArgType(name, expected, actual) {
  const err = new TypeError(`The "${name}" argument must be of type ${expected}.${describeReceived(actual)}`);
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

function invalidArgValue(name, value, reason) {
  const err = new TypeError(`The argument '${name}' ${reason}. Received ${inspect(value)}`);
  err.code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

function invalidReturnValue(name, expected, value) {
  const err = new TypeError(`Expected ${expected} to be returned from the "${name}" function but got${describeReceived(value).replace(' Received', '')}.`);
  err.code = 'ERR_INVALID_RETURN_VALUE';
  return err;
}

function validateObject(value, name) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType(name, 'object', value);
  }
}

function validateFunction(value, name) {
  if (typeof value !== 'function') throw invalidArgType(name, 'function', value);
}

function validateBoolean(value, name) {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'boolean', value);
}

module.exports = { invalidArgType, invalidArgValue, invalidReturnValue, validateObject, validateFunction, validateBoolean };
