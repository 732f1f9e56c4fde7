// A bearer-token service for the registry tests (distribution's "token" auth): GET /token?service=&scope=…
// with HTTP basic credentials answers {"token": JWT}, the JWT signed RS256 by a test key whose self-signed
// certificate is the registry's rootcertbundle (sent in the header's x5c, which distribution verifies against
// that bundle). Loopback only. argv: port-file key.pem cert.pem user:password lifetime-seconds [first-lifetime-seconds]
// The first token can be made to expire early (the registry allows 60 s of clock leeway, so a token "valid
// for L seconds" carries exp = now + L - 60) to make a client meet a 401 with a token it already had.
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as http from 'node:http'

const [portFile, keyFile, certFile, userPass, lifetime, firstLifetime] = process.argv.slice(2)
const key = crypto.createPrivateKey(fs.readFileSync(keyFile))
const certDer = new crypto.X509Certificate(fs.readFileSync(certFile)).raw.toString('base64')
const b64u = (b) => Buffer.from(b).toString('base64url')
let issued = 0

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1')
  if (u.pathname === '/issued') return res.end(String(issued))
  const auth = req.headers.authorization ?? ''
  if (!auth.startsWith('Basic ') || Buffer.from(auth.slice(6), 'base64').toString() !== userPass) {
    res.statusCode = 401
    return res.end('{"details":"bad credentials"}')
  }
  const access = u.searchParams.getAll('scope').flatMap((s) => {
    const m = /^repository:([^:]+):(.+)$/.exec(s)
    return m ? [{type: 'repository', name: m[1], actions: m[2].split(',').flatMap((a) => (a === '*' ? ['pull', 'push', 'delete'] : [a]))}] : []
  })
  const now = Math.floor(Date.now() / 1000)
  const life = Number(issued === 0 && firstLifetime ? firstLifetime : lifetime)
  issued++
  const header = b64u(JSON.stringify({typ: 'JWT', alg: 'RS256', x5c: [certDer]}))
  const claims = b64u(JSON.stringify({iss: 'velo-test-issuer', sub: userPass.split(':')[0], aud: u.searchParams.get('service'), exp: now + life - 60, nbf: now - 1, iat: now, jti: crypto.randomUUID(), access}))
  const sig = crypto.sign('sha256', Buffer.from(`${header}.${claims}`), key).toString('base64url')
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({token: `${header}.${claims}.${sig}`, expires_in: life, issued_at: new Date().toISOString()}))
})
server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)))
process.on('SIGTERM', () => process.exit(0))
