'use strict';
// Compiles the Rust addon with the napi-rs CLI. Runs from `npm install` (both in
// a checkout and when ambient is installed as a dependency from a path or a
// tarball) and from `npm run build`. `--if-stale` skips the build when
// ambient.node is newer than every Rust source, so `install` and `prepare`
// running back to back in a checkout compile once.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const addon = path.join(root, 'ambient.node');

function newestSourceMtime() {
  const inputs = ['Cargo.toml', 'Cargo.lock', 'build.rs'].map((f) => path.join(root, f));
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else inputs.push(full);
    }
  };
  walk(path.join(root, 'src'));
  return Math.max(...inputs.map((f) => fs.statSync(f).mtimeMs));
}

if (process.argv.includes('--if-stale') && fs.existsSync(addon) &&
    fs.statSync(addon).mtimeMs >= newestSourceMtime()) {
  process.exit(0);
}

function findCli() {
  const cliPackage = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
  return path.join(path.dirname(cliPackage), require(cliPackage).bin.napi);
}

let cli;
try {
  cli = findCli();
} catch {
  // `npm install <path>` links the folder and installs none of its
  // dependencies, so the CLI is missing; install the checkout's own, as locked.
  const npm = process.env.npm_execpath;
  const install = npm ?
    spawnSync(process.execPath, [npm, 'install', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' }) :
    spawnSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (install.status !== 0) process.exit(install.status ?? 1);
  cli = findCli();
}
const args = [cli, 'build', '--release', '--dts', 'native.d.ts', '--no-dts-header', '--', '--locked'];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.error) throw result.error;
process.exit(result.status ?? 1);
