// A small order service on themis-mesh/client, against the local sidecar of `npm start`.
//
//   npm start                                   # in one terminal: the 3-shard dev cluster
//   node docs/examples/order-service.mjs        # in another: the service on 127.0.0.1:8080
//   curl -X POST localhost:8080/orders -d '{"customer":"anna","total":42}'
//   curl localhost:8080/orders/ORDER-UUID
//   curl 'localhost:8080/orders?customer=anna'  # newest total first, across every shard
//
// `--demo` places a few orders, reads them back and prints a summary, then exits (the test
// test/integration/sdk-example.test.ts runs it so). THEMIS_URL names another sidecar.
import { createServer } from 'node:http';
import { ThemisClient, ThemisClientError, urn } from 'themis-mesh/client';

const TABLE = 'document.shop.orders';
const db = new ThemisClient({ url: process.env.THEMIS_URL ?? 'http://127.0.0.1:7080', timeoutMs: 5000 });

/** Places an order; the client picks its uuid, so a retried create cannot place it twice. */
async function placeOrder(customer, total) {
  const { key } = await db.create(TABLE, { customer, total, placed: new Date().toISOString() });
  return key.slice(TABLE.length + 1);
}

async function getOrder(id) {
  return (await db.get(urn(TABLE, id))).value;
}

/** A customer's orders, largest total first: one query over every shard, 50 per page. */
async function ordersOf(customer) {
  const out = [];
  for await (const { value } of db.query(TABLE).where('customer', customer).orderBy('total', { desc: true }).pageSize(50).entities()) out.push(value);
  return out;
}

/** Every failure has a stable code; the HTTP status follows from it. */
function fail(res, e) {
  const status = e instanceof ThemisClientError ? (e.status ?? 502) : 500;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ code: e instanceof ThemisClientError ? e.code : 'INTERNAL', message: e.message }));
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'POST' && url.pathname === '/orders') {
    let text = '';
    for await (const chunk of req) text += chunk;
    const { customer, total } = JSON.parse(text);
    return send(201, { id: await placeOrder(String(customer), Number(total)) });
  }
  if (req.method === 'GET' && url.pathname.startsWith('/orders/')) return send(200, await getOrder(url.pathname.slice(8)));
  if (req.method === 'GET' && url.pathname === '/orders') return send(200, await ordersOf(url.searchParams.get('customer') ?? ''));
  send(404, { code: 'ROUTE_NOT_FOUND' });
}

async function demo() {
  const customer = `demo-${process.pid}`;
  const ids = [];
  for (const total of [12, 99, 40]) ids.push(await placeOrder(customer, total));
  const first = await getOrder(ids[0]);
  const list = await ordersOf(customer);
  let missing;
  try {
    await getOrder('00000000-0000-4000-8000-000000000000');
  } catch (e) {
    missing = e.code;
  }
  console.log(JSON.stringify({ placed: ids.length, first: first.total, totals: list.map((o) => o.total), missing }));
}

if (process.argv.includes('--demo')) {
  await demo();
  await db.close();
} else {
  const server = createServer((req, res) => handle(req, res).catch((e) => fail(res, e)));
  server.listen(8080, '127.0.0.1', () => console.log('orders on http://127.0.0.1:8080'));
}
