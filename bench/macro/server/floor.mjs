// The floor of the server benchmark (`SB_BENCH_SUBJECT=floor npm run bench -- server`): the
// least a Node.js process can do and still pass the benchmark's sipp scenarios, to show how far
// any SIP server on this Node.js and this machine could go against Kamailio.
//
// It is NOT a SIP server and is never shipped: it reads only the bytes sipp's scenarios put
// where it looks, and it skips what RFC 3261 asks of a registrar and a proxy:
//   - REGISTER: 401 with a fixed nonce, then 200 to anything that carries an Authorization
//     header. Nothing is checked (no H(A1) lookup, no MD5) and nothing is stored, but for the
//     callees of the call and MESSAGE steps (users not named r<digits> or m<digits>), whose
//     Contact is sent to every worker so that any of them can route to it.
//   - INVITE and MESSAGE: 407 with a fixed nonce, then, with Proxy-Authorization present and
//     unchecked, a stateless forward (§16.11) to the callee's Contact: one Via added on top
//     (branch derived from the received one), Record-Route added to INVITE. No Max-Forwards
//     decrement, no loop check, no 100 Trying, no transaction, no credentials consumed.
//   - ACK or BYE with a Route header: forwarded to the host:port of the Request-URI with one Via
//     added; an ACK without one (the ACK of a 407) is dropped.
//   - A response: its top Via removed, sent to the host:port of the next Via.
// Like `switchboard serve --workers N`, it is a cluster: N worker processes read one shared UDP
// socket (Node.js 20 has no SO_REUSEPORT for dgram sockets).
//
//   node floor.mjs PORT WORKERS        prints "listening udp:127.0.0.1:PORT" when every worker
//                                      is bound; SIGTERM ends them all.
import cluster from 'node:cluster';
import dgram from 'node:dgram';

const HOST = '127.0.0.1';
const port = Number(process.argv[2]);
const workers = Number(process.argv[3] ?? '2');

if (cluster.isPrimary) {
  if (!(port > 0 && port < 65536) || !(workers >= 1)) {
    console.error('usage: node floor.mjs PORT WORKERS');
    process.exit(2);
  }
  let bound = 0;
  const all = [];
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    all.push(w);
    w.on('message', (m) => {
      if (m === 'bound') {
        if (++bound === workers) console.log(`listening udp:${HOST}:${port}`);
        return;
      }
      // A callee's binding: every worker routes to it.
      for (const other of all) other.send(m);
    });
  }
  const stop = () => {
    for (const w of all) w.process.kill('SIGKILL');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  cluster.on('exit', (w, code, signal) => {
    console.error(`floor worker ${w.process.pid} exited: ${code} ${signal}`);
  });
} else {
  const bindings = new Map();
  process.on('message', (m) => bindings.set(m.user, m.target));
  const socket = dgram.createSocket({ type: 'udp4' });
  const ourVia = `Via: SIP/2.0/UDP ${HOST}:${port};branch=z9hG4bKfl`;
  const recordRoute = `Record-Route: <sip:${HOST}:${port};lr>\r\n`;
  const challenge = (name) =>
    `${name}: Digest realm="example.com", nonce="floor${process.pid}f00d", qop="auth", algorithm=MD5\r\n`;
  const www = challenge('WWW-Authenticate');
  const proxy = challenge('Proxy-Authenticate');

  /** The value of the first `\r\nName: ` line, '' when absent. */
  const header = (msg, name) => {
    const at = msg.indexOf(`\r\n${name}: `);
    if (at < 0) return '';
    const start = at + name.length + 4;
    return msg.slice(start, msg.indexOf('\r\n', start));
  };
  /** host:port after the `@` of a SIP URI starting at `from`. */
  const hostPort = (s, from) => {
    const at = s.indexOf('@', from) + 1;
    let end = at;
    while (end < s.length) {
      const c = s.charCodeAt(end);
      if (c === 59 || c === 62 || c === 32) break; // ; > space
      end++;
    }
    return s.slice(at, end);
  };
  const send = (text, target) => {
    const colon = target.lastIndexOf(':');
    socket.send(text, Number(target.slice(colon + 1)), target.slice(0, colon));
  };
  const reply = (msg, status, extra, rinfo) => {
    let to = header(msg, 'To');
    if (!to.includes(';tag=')) to += ';tag=floor';
    socket.send(
      `SIP/2.0 ${status}\r\nVia: ${header(msg, 'Via')}\r\nFrom: ${header(msg, 'From')}\r\n` +
        `To: ${to}\r\nCall-ID: ${header(msg, 'Call-ID')}\r\nCSeq: ${header(msg, 'CSeq')}\r\n` +
        `${extra}Content-Length: 0\r\n\r\n`,
      rinfo.port,
      rinfo.address,
    );
  };
  /** The request with our Via on top (and `more` lines before it), sent to `target`. */
  const forward = (msg, target, more) => {
    const via = msg.indexOf('\r\nVia: ') + 2;
    const b = msg.indexOf('branch=', via) + 7;
    let e = b;
    while (e < msg.length) {
      const c = msg.charCodeAt(e);
      if (c === 59 || c === 13 || c === 44) break; // ; CR ,
      e++;
    }
    send(`${msg.slice(0, via)}${more}${ourVia}${msg.slice(b, e)}\r\n${msg.slice(via)}`, target);
  };

  socket.on('message', (buf, rinfo) => {
    const msg = buf.toString('latin1');
    if (msg.startsWith('SIP/2.0 ')) {
      // Our Via is the top one: drop it, send to the next. sipp's [last_Via:] puts every Via
      // value on one line, comma-separated.
      const top = msg.indexOf('\r\nVia: ');
      if (top < 0) return;
      const lineEnd = msg.indexOf('\r\n', top + 7);
      const comma = msg.indexOf(',', top + 7);
      let rest;
      let out;
      if (comma >= 0 && comma < lineEnd) {
        rest = comma + 1;
        out = msg.slice(0, top + 7) + msg.slice(msg.charCodeAt(rest) === 32 ? rest + 1 : rest);
      } else {
        rest = msg.indexOf('\r\nVia: ', top + 7);
        if (rest < 0) return;
        out = msg.slice(0, top) + msg.slice(rest);
      }
      const sentBy = msg.indexOf(' ', msg.indexOf('SIP/2.0/', rest)) + 1;
      let end = sentBy;
      while (end < msg.length) {
        const c = msg.charCodeAt(end);
        if (c === 59 || c === 13 || c === 44 || c === 32) break; // ; CR , space
        end++;
      }
      send(out, msg.slice(sentBy, end));
      return;
    }
    const sp = msg.indexOf(' ');
    const method = msg.slice(0, sp);
    if (method === 'REGISTER') {
      if (!msg.includes('\r\nAuthorization: ')) {
        reply(msg, '401 Unauthorized', www, rinfo);
        return;
      }
      const contact = header(msg, 'Contact');
      const to = header(msg, 'To');
      const user = to.slice(to.indexOf('sip:') + 4, to.indexOf('@'));
      if (!/^[rm]\d+$/.test(user)) {
        process.send({ user, target: hostPort(contact, 0) });
      }
      reply(msg, '200 OK', `Contact: ${contact};expires=3600\r\n`, rinfo);
      return;
    }
    if (method === 'INVITE' || method === 'MESSAGE') {
      if (!msg.includes('\r\nProxy-Authorization: ')) {
        reply(msg, '407 Proxy Authentication Required', proxy, rinfo);
        return;
      }
      const user = msg.slice(msg.indexOf('sip:') + 4, msg.indexOf('@'));
      const target = bindings.get(user);
      if (target === undefined) reply(msg, '480 Temporarily Unavailable', '', rinfo);
      else forward(msg, target, method === 'INVITE' ? recordRoute : '');
      return;
    }
    if (msg.includes('\r\nRoute: ')) forward(msg, hostPort(msg, sp), '');
    // else: the ACK of a 407, absorbed.
  });
  socket.bind({ port, address: HOST, exclusive: false }, () => process.send('bound'));
}
