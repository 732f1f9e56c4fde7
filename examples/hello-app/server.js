// A small app for velo's main job. With PORT set it serves on that port (0.0.0.0, in the sandbox's own network
// namespace) and logs every request to stdout, until it is stopped; without PORT it starts on loopback,
// requests itself once, prints what it saw, and exits.
const http = require('node:http')
const os = require('node:os')

const server = http.createServer((req, res) => {
  console.log(`${new Date().toISOString()} ${req.method} ${req.url}`)
  res.end(`hello from ${os.hostname()} (pid ${process.pid}), you asked for ${req.url}\n`)
})

if (process.env.PORT) {
  server.listen(Number(process.env.PORT), () => console.log(`hello-app listening on port ${process.env.PORT}`))
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
} else {
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
}
