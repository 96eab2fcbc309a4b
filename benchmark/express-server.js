'use strict';
// One Express hello-world server for the throughput benchmark, with the
// request logging of one variant (express-variants.js). Prints the port
// once listening.
// Usage: node express-server.js <variant>   (or ambient@DIR)
const { helloApp } = require('./express-variants');

const app = helloApp(process.argv[2]);
// Exit cleanly on SIGINT, so `node --cpu-prof` can write its profile.
process.once('SIGINT', () => process.exit(0));
const server = app.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
