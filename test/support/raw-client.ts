// Raw TCP clients for testing a listener's connection limits: write exactly the bytes a test
// wants, when it wants (a slowloris trickling headers, a body that stalls, a silent connection),
// and note when the server closes the connection and what it sent first.
import http from 'node:http';
import net from 'node:net';

export interface RawConnection {
  socket: net.Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** Resolves with the milliseconds from connect to the server's close (or reset). */
  closed: Promise<number>;
  /** Writes unless the connection is gone; false when it is. */
  write(text: string): boolean;
  /** Resolves once `pattern` has arrived (rejects when the connection closes first). */
  until(pattern: RegExp): Promise<string>;
}

export function rawConnect(port: number, host = '127.0.0.1'): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host });
    let text = '';
    let started = 0;
    const waiters: (() => void)[] = [];
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      text += d;
      for (const w of waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
    const closed = new Promise<number>((r) =>
      socket.once('close', () => {
        r(Date.now() - started);
        for (const w of waiters.splice(0)) w();
      }),
    );
    socket.once('connect', () => {
      started = Date.now();
      resolve({
        socket,
        received: () => text,
        closed,
        write: (s) => (socket.destroyed || !socket.writable ? false : (socket.write(s), true)),
        until: (pattern) =>
          new Promise((res, rej) => {
            const check = (): void => {
              if (pattern.test(text)) res(text);
              else if (socket.destroyed) rej(new Error(`closed before ${pattern}; received ${JSON.stringify(text.slice(0, 200))}`));
              else waiters.push(check);
            };
            check();
          }),
      });
    });
    socket.once('error', reject);
  });
}

/** Trickles `lines` of headers one every `everyMs` until the server closes the connection. */
export function trickle(c: RawConnection, everyMs: number, line = (i: number) => `x-slow-${i}: y\r\n`): () => void {
  let i = 0;
  const timer = setInterval(() => {
    if (!c.write(line(i++))) clearInterval(timer);
  }, everyMs);
  void c.closed.then(() => clearInterval(timer));
  return () => clearInterval(timer);
}

/** A GET on a fresh connection of its own (no pooled connection lingers to count against a cap). */
export function freshGet(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Runs `f` while `probe` is asked every 100 ms (a failed probe counts as -1); returns every status seen. */
export async function statusesDuring(probe: () => Promise<number>, f: () => Promise<void>): Promise<number[]> {
  let stop = false;
  const statuses: number[] = [];
  const loop = (async () => {
    while (!stop) {
      statuses.push(await probe().catch(() => -1));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    await f();
  } finally {
    stop = true;
    await loop;
  }
  return statuses;
}
