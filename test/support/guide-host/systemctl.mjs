#!/usr/bin/env node
// `systemctl` for the guide test (test/integration/deploy-guide.test.ts): on a loopback "host"
// (its own mount and PID namespaces), runs a unit from /etc/systemd/system as systemd would
// start it: ExecStart with the unit's Environment= and EnvironmentFile=, as its User=, Group=
// and SupplementaryGroups= (setpriv: a missing user or group fails the start, as under systemd),
// its UMask=, and systemd's default PATH (the programs found where the install step put them).
// Type=notify waits for READY=1 on a NOTIFY_SOCKET, as `systemctl start` does (etcd members
// are ready only once they have a leader). ExecReload= with $MAINPID. Not emulated: the
// hardening directives (ProtectSystem=, ReadWritePaths=, …), Restart=, and the directories
// systemd would create (StateDirectory=, …): the bundle and the guide's chown provide them.
// Commands: daemon-reload, enable [--now], disable [--now], start, stop, restart, reload.
// State: /run/guide-systemctl/ (a tmpfs of the host's own); output: /var/log/guide-journal/.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

const UNITS = '/etc/systemd/system';
const STATE = '/run/guide-systemctl';
const JOURNAL = '/var/log/guide-journal';
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const fail = (msg, code = 1) => {
  process.stderr.write(`systemctl: ${msg}\n`);
  process.exit(code);
};

function unitName(n) {
  return n.includes('.') ? n : `${n}.service`;
}

function readEnvFile(file) {
  const env = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m && !line.trimStart().startsWith('#')) env[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return env;
}

function parseUnit(name) {
  const file = `${UNITS}/${name}`;
  if (!existsSync(file)) fail(`Unit ${name} not found.`, 5);
  const u = { env: {}, type: 'simple', supplementary: [], timeoutStart: 90, timeoutStop: 90 };
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(raw.trim());
    if (!m) continue;
    const [, k, v] = m;
    if (k === 'Environment') {
      for (const kv of v.split(/\s+/).filter(Boolean)) {
        const i = kv.indexOf('=');
        u.env[kv.slice(0, i)] = kv.slice(i + 1);
      }
    } else if (k === 'EnvironmentFile') Object.assign(u.env, readEnvFile(v.replace(/^-/, '')));
    else if (k === 'ExecStart') u.exec = v.split(/\s+/).filter(Boolean);
    else if (k === 'ExecReload') u.reload = v;
    else if (k === 'Type') u.type = v;
    else if (k === 'User') u.user = v;
    else if (k === 'Group') u.group = v;
    else if (k === 'SupplementaryGroups') u.supplementary.push(...v.split(/\s+/).filter(Boolean));
    else if (k === 'UMask') u.umask = parseInt(v, 8);
    else if (k === 'TimeoutStartSec') u.timeoutStart = parseInt(v, 10);
    else if (k === 'TimeoutStopSec') u.timeoutStop = parseInt(v, 10);
  }
  if (!u.exec) fail(`${name} has no ExecStart`);
  return u;
}

const pidFile = (name) => `${STATE}/${name}.pid`;

/** The main PID if the unit runs (a zombie, not yet reaped by this namespace's init, has ended). */
function mainPid(name) {
  if (!existsSync(pidFile(name))) return undefined;
  const pid = Number(readFileSync(pidFile(name), 'utf8'));
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /\) [ZX] /.test(stat) ? undefined : pid;
  } catch {
    return undefined;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function start(name) {
  if (mainPid(name) !== undefined) return;
  const u = parseUnit(name);
  mkdirSync(STATE, { recursive: true });
  mkdirSync(JOURNAL, { recursive: true });
  const log = openSync(`${JOURNAL}/${name}.log`, 'a');
  const env = { PATH: SYSTEMD_PATH, LANG: 'C.UTF-8', ...u.env };
  if (u.user) Object.assign(env, { USER: u.user, LOGNAME: u.user });
  let notify;
  if (u.type === 'notify') {
    const sock = `${STATE}/${name}.notify`;
    rmSync(sock, { force: true });
    notify = spawn('python3', ['-c', NOTIFY_RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    notify.stdout.on('data', (d) => (out += d));
    notify.ready = () => out.includes('READY');
    for (let i = 0; !out.includes('bound') && i < 100; i++) await sleep(50);
    env.NOTIFY_SOCKET = sock;
  }
  const ids = [];
  if (u.user) ids.push(`--reuid=${u.user}`);
  if (u.group ?? u.user) ids.push(`--regid=${u.group ?? u.user}`);
  if (u.user) ids.push(u.supplementary.length ? `--groups=${u.supplementary.join(',')}` : '--init-groups');
  const argv = ids.length ? ['setpriv', ...ids, '--', ...u.exec] : u.exec;
  const old = u.umask === undefined ? undefined : process.umask(u.umask);
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', log, log], env });
  if (old !== undefined) process.umask(old);
  closeSync(log);
  const spawned = await new Promise((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', (e) => resolve(e));
  });
  if (spawned !== true) fail(`Failed to start ${name}: ${spawned.message}`);
  writeFileSync(pidFile(name), String(child.pid));
  child.unref();
  if (!notify) return;
  const end = Date.now() + u.timeoutStart * 1000;
  while (!notify.ready()) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > end) {
      notify.kill();
      fail(`Job for ${name} failed (${child.exitCode !== null || child.signalCode !== null ? `exited ${child.exitCode ?? child.signalCode}` : 'start timed out'}); see ${JOURNAL}/${name}.log`);
    }
    await sleep(100);
  }
}

async function stop(name) {
  const pid = mainPid(name);
  if (pid === undefined) return;
  const u = parseUnit(name);
  process.kill(pid, 'SIGTERM');
  const end = Date.now() + u.timeoutStop * 1000;
  while (mainPid(name) !== undefined && Date.now() < end) await sleep(100);
  if (mainPid(name) !== undefined) process.kill(pid, 'SIGKILL');
  rmSync(pidFile(name), { force: true });
}

function reload(name) {
  const pid = mainPid(name);
  if (pid === undefined) fail(`Job for ${name} failed: the unit is not active.`);
  const u = parseUnit(name);
  if (!u.reload) fail(`Job for ${name} failed: the unit has no ExecReload.`);
  const argv = u.reload.replaceAll('$MAINPID', String(pid)).split(/\s+/).filter(Boolean);
  const r = spawnSync(argv[0], argv.slice(1), { stdio: 'inherit' });
  if (r.status !== 0) fail(`Job for ${name} failed: ExecReload exited ${r.status}`);
}

const NOTIFY_RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
print("bound", flush=True)
while True:
    if "READY=1" in s.recv(4096).decode(errors="replace").split("\\n"):
        print("READY", flush=True)
        break
`;

const [cmd, ...rest] = process.argv.slice(2);
const now = rest.includes('--now');
const names = rest.filter((a) => !a.startsWith('-')).map(unitName);
switch (cmd) {
  case 'daemon-reload':
    break;
  case 'enable':
  case 'start':
    // One after the other, in the order given (the guide names them in their After= order).
    if (cmd === 'start' || now) for (const n of names) await start(n);
    break;
  case 'disable':
  case 'stop':
    if (cmd === 'stop' || now) for (const n of names) await stop(n);
    break;
  case 'restart':
    for (const n of names) {
      await stop(n);
      await start(n);
    }
    break;
  case 'reload':
    names.forEach(reload);
    break;
  default:
    fail(`unknown command "${cmd}" (the guide test's systemctl knows daemon-reload, enable, disable, start, stop, restart, reload)`);
}
