// A loopback TCP proxy in front of a test's registry, driven through stdin: "pass" forwards, "stall" accepts
// and never answers (a registry that hangs), "cut" forwards the request and the first 600 bytes of the answer,
// then closes (a registry killed mid-read), "down" refuses connections (a registry killed), "whole" forwards with
// the requests' Range headers removed (a registry that ignores Range: 200 and the whole blob). Every switch cuts the
// open connections and is acknowledged with "ok MODE" on stdout. Prints "port N" first. A separate process: the
// test's spawnSync calls block its own event loop.
import * as net from 'node:net'
import * as readline from 'node:readline'

const target = Number(process.argv[2])
let mode = 'pass'
const socks = new Set()
const track = (s) => {
  socks.add(s)
  s.on('close', () => socks.delete(s))
  s.on('error', () => s.destroy())
}
const onConn = (c) => {
  track(c)
  if (mode === 'stall') return
  const u = net.connect(target, '127.0.0.1')
  track(u)
  u.on('close', () => c.destroy())
  c.on('close', () => u.destroy())
  // a request's headers arrive in one chunk on loopback: the Range line is dropped from it
  if (mode === 'whole') c.on('data', (d) => u.write(Buffer.from(d.toString('latin1').replace(/\r\nrange:[^\r]*/gi, ''), 'latin1')))
  else c.pipe(u)
  if (mode === 'cut') {
    let n = 0
    u.on('data', (d) => {
      if (n < 600) c.write(d.subarray(0, 600 - n))
      n += d.length
      if (n >= 600) {
        c.destroy()
        u.destroy()
      }
    })
  } else u.pipe(c)
}
let server = net.createServer(onConn)
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port
  process.stdout.write(`port ${port}\n`)
  readline.createInterface({input: process.stdin}).on('line', (m) => {
    for (const s of socks) s.destroy()
    const done = () => {
      mode = m
      process.stdout.write(`ok ${m}\n`)
    }
    if (m === 'down' && mode !== 'down') server.close(done)
    else if (m !== 'down' && mode === 'down') {
      server = net.createServer(onConn)
      server.listen(port, '127.0.0.1', done)
    } else done()
  })
})
process.stdin.on('end', () => process.exit(0))
