// The guards every command relies on, one by one: secrets checked as read and filtered
// from output, bounded waits that say so, numeric options with their range, text that
// must be UTF-8, and lab-file paths that mean the same from any directory.

import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { parseNumber } from '../../src/cli/option-checks.ts';
import { pathForLabFile, resolveLabPath, shownPath } from '../../src/config/paths.ts';
import { worstExitCode } from '../../src/core/errors.ts';
import { cleanSecret, redact, rememberSecret, secretProblem } from '../../src/core/secrets.ts';
import { firstInvalidUtf8, isText } from '../../src/core/text.ts';
import {
  connectionsTo,
  describeWait,
  onWait,
  reportRetry,
  type WaitEvent,
  WaitWatch,
} from '../../src/core/waits.ts';

test('a token secret is one line of printable ASCII; the reason never quotes it', () => {
  const secret = '0f3c2b1a-9d8e-4f7a-8b6c-5d4e3f2a1b0c';
  assert.equal(secretProblem(`${secret}\n`), undefined);
  assert.equal(secretProblem(`  ${secret}\r\n\n`), undefined);
  assert.equal(cleanSecret(`  ${secret}\r\n`), secret);
  assert.equal(secretProblem(''), 'is empty');
  assert.equal(secretProblem('\n\n'), 'is empty');
  assert.match(secretProblem(`${secret}\nmy note\n`) ?? '', /^has 2 lines/);
  assert.match(secretProblem(`${secret}\0`) ?? '', /position 37/);
  assert.match(secretProblem('two words') ?? '', /position 4/);
  assert.match(secretProblem('caf\u00e9') ?? '', /position 4/);
  for (const raw of [`${secret}\nnote`, `${secret}\0`, `x ${secret}`])
    assert.ok(!(secretProblem(raw) ?? '').includes(secret.slice(0, 8)), 'the reason quotes the secret');
});

test('output loses a remembered secret whole, in pieces, base64 and percent-encoded', () => {
  const secret = 'k9!Zq7#wP2@xV5$m';
  rememberSecret(secret);
  const forms = [
    secret,
    secret.slice(3, 11),
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64url'),
    encodeURIComponent(secret),
  ];
  for (const form of forms) {
    const out = redact(`before ${form} after`);
    assert.equal(out, 'before [secret] after', form);
  }
  assert.equal(redact('nothing secret here'), 'nothing secret here');
  // Short values would hide ordinary words: they are not remembered.
  rememberSecret('admin');
  assert.equal(redact('admin'), 'admin');
});

test('output loses a secret in any letter case, in hex, and base64 of it at any offset in what was encoded', () => {
  const secret = '5e3c1a2b-7d4f-4e6a-9b8c-0d1e2f3a4b5c';
  rememberSecret(secret);
  const header = `igpu-split@pve!lab=${secret}`;
  const encoded = [
    ...['', 'x', 'xy', 'xyz', header.slice(0, -secret.length)].flatMap((before) =>
      (['base64', 'base64url'] as const).map((alphabet) =>
        Buffer.from(`${before}${secret}tail`).toString(alphabet),
      ),
    ),
    Buffer.from(header).toString('base64'),
  ];
  for (const form of [
    secret.toUpperCase(),
    `IGPU-SPLIT@PVE!LAB=${secret.toUpperCase()}`,
    secret.slice(9, 19).toUpperCase(),
    Buffer.from(secret).toString('hex'),
    Buffer.from(secret).toString('hex').toUpperCase(),
    ...encoded,
  ]) {
    const out = redact(`failed: ${form} end`);
    assert.match(out, /^failed: .{0,30}\[secret\].{0,30} end$/, form);
    // What is left beside the mark is never enough to carry the secret back.
    assert.ok(out.length < 'failed:  end'.length + '[secret]'.length + 60, out);
  }
  // The base64 of the whole header value leaves at most its first, public, part.
  const whole = redact(Buffer.from(header).toString('base64'));
  assert.match(whole, /^[A-Za-z0-9+/]{0,26}\[secret\][A-Za-z0-9+/]?=*$/);
});

/** Mocked time moves on half a second at a time, as the wait watch ticks (one tick of the mock sees its end time). */
function advance(ms: number): void {
  for (let done = 0; done < ms; done += 500) mock.timers.tick(500);
}

test('a wait that lasts says so after 2 s and at least every 5 s, one line for many requests; a retry is a line', async () => {
  mock.timers.enable({ apis: ['setInterval', 'Date'] });
  const events: WaitEvent[] = [];
  const off = onWait((event) => events.push(event));
  try {
    const watch = new WaitWatch('https://pve1:8006', 10_000);
    let finish = () => {};
    const pending = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const a = watch.track('GET /nodes', pending);
    const b = watch.track('GET /version', pending);
    advance(1_500);
    assert.equal(events.length, 0, 'nothing before 2 s');
    advance(1_000);
    assert.equal(events.length, 1);
    assert.equal(
      describeWait(events[0] as WaitEvent),
      'https://pve1:8006: still waiting for GET /nodes and 1 more (2 s so far; gives up after 10 s)',
    );
    advance(3_000);
    assert.equal(events.length, 1, 'not again within 4 s');
    advance(1_500);
    assert.equal(events.length, 2, 'again within 5 s');
    assert.equal(events[1]?.kind === 'waiting' && events[1].elapsedMs, 6_000);
    finish();
    await Promise.all([a, b]);
    advance(30_000);
    assert.equal(events.length, 2, 'silent once answered');
    reportRetry({
      target: 'https://pve1:8006',
      what: 'GET /nodes',
      reason: 'connection refused',
      delayMs: 500,
      attempt: 1,
      attempts: 3,
    });
    assert.equal(
      describeWait(events[2] as WaitEvent),
      'https://pve1:8006: GET /nodes failed (connection refused); attempt 2 of 3 in 0.5 s',
    );
  } finally {
    off();
    mock.timers.reset();
  }
});

test('a wait says the limit that ends it: the connect limit until a connection is open, then the answer limit', () => {
  mock.timers.enable({ apis: ['setInterval', 'Date'] });
  const events: WaitEvent[] = [];
  const off = onWait((event) => events.push(event));
  try {
    const connections = connectionsTo('https://pve7:8006', 4_000);
    const watch = new WaitWatch('https://pve7:8006', 10_000);
    void watch.track('GET /nodes', new Promise(() => {}));
    advance(3_500);
    assert.equal(
      describeWait(events[0] as WaitEvent),
      'https://pve7:8006: still waiting for GET /nodes (2 s so far, not connected yet; gives up after 4 s without a connection)',
    );
    connections.opened();
    advance(10_000);
    assert.equal(
      describeWait(events.at(-1) as WaitEvent),
      'https://pve7:8006: still waiting for GET /nodes (10 s so far; gives up after 6 s without an answer, 10 s in all)',
    );
  } finally {
    off();
    mock.timers.reset();
  }
});

test('numeric options: plain decimals inside the range, or a message with the range', () => {
  const parallel = { min: 1, max: 64, integer: true };
  const seconds = { min: 1, max: 300, seconds: true };
  assert.equal(parseNumber('--parallel', parallel, '8'), 8);
  assert.equal(parseNumber('--connect-timeout', seconds, '2.5'), 2.5);
  for (const bad of ['abc', '0', '65', '1.5', '-1', '1e2', '0x10', '', ' ', 'Infinity', 'NaN', '3s']) {
    assert.throws(
      () => parseNumber('--parallel', parallel, bad),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        error.message === '--parallel must be a whole number from 1 to 64',
      bad,
    );
  }
  assert.throws(() => parseNumber('--connect-timeout', seconds, '0.5'), /a number of seconds from 1 to 300/);
});

test('text: UTF-8 without NUL bytes; the first bad byte is found', () => {
  assert.ok(isText(Buffer.from('grüße\n')));
  assert.ok(!isText(Buffer.from([0x41, 0, 0x42])));
  assert.equal(firstInvalidUtf8(Buffer.from('abc')), -1);
  assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0xe9, 0x62])), 1, 'Latin-1 é');
  assert.equal(firstInvalidUtf8(Buffer.from([0xc0, 0xaf])), 0, 'an overlong slash');
  assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0xed, 0xa0, 0x80])), 1, 'a surrogate');
  assert.equal(firstInvalidUtf8(Buffer.from([0xe2, 0x82])), 0, 'cut short');
});

test('lab paths: ~ is home, relative is the lab folder’s; init writes what resolves the same', () => {
  assert.equal(resolveLabPath('~/.kube/config', '/labs/a'), join(homedir(), '.kube/config'));
  assert.equal(resolveLabPath('~', '/labs/a'), homedir());
  assert.equal(resolveLabPath('token', '/labs/a'), '/labs/a/token');
  assert.equal(resolveLabPath('../shared/token', '/labs/a'), '/labs/shared/token');
  assert.equal(resolveLabPath('/etc/pve/pve-root-ca.pem', '/labs/a'), '/etc/pve/pve-root-ca.pem');
  assert.throws(() => resolveLabPath('~root/token', '/labs/a'), /only ~ and ~\/… are expanded/);
  assert.equal(shownPath('/home/me/t', '~/t'), '~/t (resolved to /home/me/t)');
  assert.equal(shownPath('/labs/a/token', '/labs/a/token'), '/labs/a/token');
  // From /work, `init --token-secret-file secrets/token --out labs/a/igpu-split.yaml`:
  const written = pathForLabFile('secrets/token', 'labs/a/igpu-split.yaml', '/work');
  assert.equal(written, '/work/secrets/token', 'outside the lab folder: absolute');
  assert.equal(resolveLabPath(written, '/work/labs/a'), '/work/secrets/token');
  const inside = pathForLabFile('labs/a/token', 'labs/a/igpu-split.yaml', '/work');
  assert.equal(inside, 'token');
  assert.equal(resolveLabPath(inside, '/work/labs/a'), '/work/labs/a/token');
  assert.equal(pathForLabFile('~/t', 'x.yaml', '/work'), '~/t');
});

test('the worst of several exit codes is ranked as README "Exit codes" says: 1 over 2 over 3 over 0', () => {
  assert.equal(worstExitCode([]), 0);
  assert.equal(worstExitCode([0, 3]), 3);
  assert.equal(worstExitCode([3, 1]), 1);
  assert.equal(worstExitCode([3, 2, 0]), 2);
  assert.equal(worstExitCode([2, 1, 3]), 1);
});
