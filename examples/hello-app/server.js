// A small app for velo's main job: starts an HTTP server on loopback, requests itself once, prints what it
// saw, and exits. Everything stays inside the sandbox's own network namespace.
const http = require('node:http')
const os = require('node:os')

const server = http.createServer((req, res) => {
  res.end(`hello from ${os.hostname()} (pid ${process.pid}), you asked for ${req.url}\n`)
})
server.listen(0, '127.0.0.1', () => {
  const {port} = server.address()
  http.get({host: '127.0.0.1', port, path: '/velo'}, (res) => {
    let body = ''
    res.on('data', (c) => (body += c))
    res.on('end', () => {
      process.stdout.write(body)
      server.close()
    })
  })
})
