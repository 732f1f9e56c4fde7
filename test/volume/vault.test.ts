import {execFileSync, spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, velo, VELO} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'

// A volume's vault (src/volume/vault.ts, native/tools/velo-vault.c): the kernel's fscrypt on an ext4 image of its
// own, the key wrapped by an Argon2id-derived one. Real mounts, a real tenant, real kernel keys: nothing mocked.
describe('volume vault', () => {
  const sb = new SandboxHome()
  const work = tmpDir('velo-vault-')
  const volumes: string[] = []
  const mounts: string[] = []
  afterAll(() => {
    for (const m of mounts) {
      try {
        execFileSync('umount', ['-R', m], {stdio: 'ignore'})
      } catch {}
    }
    for (const v of volumes) sb.velo(['volume', 'vault', 'lock', v])
    rmrf(work)
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })
  const run = (args: string[], input?: string) => velo(sb.home, args, input === undefined ? {} : {input})
  const ok = (args: string[], input?: string) => {
    const r = run(args, input)
    expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    return r
  }
  const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], {encoding: 'utf8'})
  const vaultDir = (v: string) => path.join(sb.home, 'volumes', v, 'vault')
  const dataDir = (v: string) => path.join(sb.home, 'volumes', v, 'data')
  const stateOf = (v: string) => sb.json(['volume', 'inspect', v]).vault
  const PW = 'correct horse battery staple'

  function newVault(): {V: string; mnt: string} {
    const V = uniq('vault')
    volumes.push(V)
    ok(['volume', 'create', V])
    ok(['volume', 'vault', 'create', V, '--password-stdin', '--size', '64m'], PW + '\n')
    const mnt = path.join(work, V)
    fs.mkdirSync(mnt)
    ok(['volume', 'mount', V, mnt])
    mounts.push(mnt)
    return {V, mnt}
  }

  /** A process of this host holding a file of the vault open; read() has it read the file again through that fd. */
  function holder(file: string): {pid: number; read: () => Promise<string>; end: () => Promise<void>} {
    const c = spawn(
      process.execPath,
      ['-e', `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(file)},'r');process.on('SIGUSR1',()=>{try{const b=Buffer.alloc(64);const n=fs.readSync(fd,b,0,64,0);console.log('read '+b.subarray(0,n).toString().trim())}catch(e){console.log('error '+e.code)}});console.log('open');setInterval(()=>{},1000)`],
      {stdio: ['ignore', 'pipe', 'inherit']},
    )
    const closed = new Promise<void>((r) => c.on('close', () => r()))
    const lines: string[] = []
    let buf = ''
    const waiters: Array<() => void> = []
    c.stdout.on('data', (d) => {
      buf += d
      const parts = buf.split('\n')
      buf = parts.pop()!
      lines.push(...parts)
      for (const w of waiters.splice(0)) w()
    })
    const line = async (n: number) => {
      while (lines.length < n) await new Promise<void>((r) => waiters.push(r))
      return lines[n - 1]
    }
    let seen = 1 // 'open'
    return {
      pid: c.pid!,
      read: async () => {
        await line(seen++)
        c.kill('SIGUSR1')
        return line(seen)
      },
      end: async () => {
        c.kill('SIGKILL')
        await closed
      },
    }
  }

  it('an unlocked vault is a POSIX directory at .vault in host mounts and tenants; locked, it is gone and its open files fail with EIO', async () => {
    const {V, mnt} = newVault()
    expect(stateOf(V)).toBe('unlocked')
    const vault = path.join(mnt, '.vault')
    // ordinary work through the host's mount: files, dirs, modes, owners, links, renames, removals
    sh(`cd ${vault} && echo 'the launch code is 0000-1111' > launch-codes.txt && mkdir -p keys/old && cp /etc/hosts keys/hosts && chmod 600 keys/hosts && echo mine > keys/mine && chown 1000:1000 keys/mine && ln -s keys/hosts link && ln keys/hosts keys/hard && mv keys/old keys/older && touch gone && rm gone`)
    const listing = sh(`cd ${vault} && find . -printf '%p %y %m %U:%G %n %l\\n' | sort && sha256sum launch-codes.txt keys/hosts`)
    expect(listing).toMatch(/\.\/keys\/hosts f 600 0:0 2 /)
    expect(listing).toMatch(/\.\/keys\/mine f 644 1000:1000 1 /)

    // a tenant with the volume sees it as its own root's files (idmapped with the tenant's own map), can't rename it
    const T = uniq('vt')
    sb.create(T, ['-v', `${V}:/data`])
    expect(sb.sh(T, 'cat /data/.vault/launch-codes.txt; stat -c "%u:%g %a" /data/.vault/keys/mine /data/.vault/keys/hosts').stdout).toBe('the launch code is 0000-1111\n1000:1000 644\n0:0 600\n')
    const mv = sb.sh(T, 'mv /data/.vault /data/elsewhere')
    expect(mv.status).not.toBe(0)
    expect(mv.stderr).toMatch(/busy/i)
    expect(sh(`mv ${vault} ${mnt}/elsewhere 2>&1 || true`)).toMatch(/busy/i)
    expect(fs.existsSync(vault)).toBe(true)

    // a file held open through the host's mount, then the lock
    const h = holder(path.join(vault, 'launch-codes.txt'))
    try {
      expect(await h.read()).toBe('read the launch code is 0000-1111')
      const lock = sb.json(['volume', 'vault', 'lock', V])
      expect(lock).toMatchObject({volume: V, state: 'locked', openFiles: true})
      // the open descriptor fails; the vault is absent everywhere: the host's mount, the data dir, the tenant
      expect(await h.read()).toBe('error EIO')
      expect(fs.readdirSync(mnt).sort()).toEqual(['.snapshots'])
      expect(fs.existsSync(path.join(dataDir(V), '.vault'))).toBe(false)
      expect(sb.sh(T, 'ls -a /data; test -e /data/.vault && echo present || echo absent').stdout).toBe('.\n..\n.snapshots\nabsent\n')
      expect(stateOf(V)).toBe('locked')
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(vaultDir(V))
      // on disk: neither the bytes nor the names in clear, and no password
      const img = path.join(vaultDir(V), 'disk.img')
      expect(sh(`grep -c -a -e 'launch code' -e 'launch-codes' ${img} || true`).trim()).toBe('0')
      expect(sh(`grep -c -a -F '${PW}' ${vaultDir(V)}/* || true`).trim().split('\n').every((l) => l.endsWith('0'))).toBe(true)

      // unlocking while that process still holds the old filesystem is refused, naming it
      const busy = run(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
      expect(busy.status).toBe(1)
      expect(busy.stderr).toMatch(/BUSY/)
      expect(busy.stderr).toContain(String(h.pid))
    } finally {
      await h.end()
    }
    // once it is gone, the files are back, identical: the loop device goes with the filesystem's last user, a
    // moment later, and the unlock waits for it
    const unlocked = run(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
    expect(unlocked.status, unlocked.stderr).toBe(0)
    expect(sh(`cd ${vault} && find . -printf '%p %y %m %U:%G %n %l\\n' | sort && sha256sum launch-codes.txt keys/hosts`)).toBe(listing)
    // the running tenant has it again (the unlock bound it in its namespace, idmapped), and so does its next start
    const inTenant = 'cat /data/.vault/launch-codes.txt; stat -c "%u:%g" /data/.vault/keys/mine; mv /data/.vault /data/x 2>/dev/null || echo refused'
    expect(sb.sh(T, inTenant).stdout).toBe('the launch code is 0000-1111\n1000:1000\nrefused\n')
    ok(['sandbox', 'stop', T])
    ok(['sandbox', 'start', T])
    expect(sb.sh(T, inTenant).stdout).toBe('the launch code is 0000-1111\n1000:1000\nrefused\n')
    ok(['sandbox', 'rm', '-f', T])
  })

  it('a wrong password says nothing more, and tries after it wait longer each time', async () => {
    const {V} = newVault()
    ok(['volume', 'vault', 'lock', V])
    const wrong = run(['volume', 'vault', 'unlock', V, '--password-stdin'], 'correct horse battery stapler')
    expect(wrong.status).toBe(1)
    expect(wrong.stderr).toMatch(/^velo: error \[AUTH\]: wrong password for the vault of volume \S+\n/)
    expect(wrong.stderr).not.toMatch(/stapler|tag|decipher|argon/i)
    // at once again, even with the right password: refused before any work
    const limited = run(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
    expect(limited.status).toBe(1)
    expect(limited.stderr).toMatch(/RATE_LIMITED/)
    expect(stateOf(V)).toBe('locked')
    await new Promise((r) => setTimeout(r, 1100))
    // a second wrong one: the next try waits 2 s
    expect(run(['volume', 'vault', 'unlock', V, '--password-stdin'], 'nope').stderr).toMatch(/next try waits 2 s/)
    await new Promise((r) => setTimeout(r, 2100))
    ok(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
    expect(stateOf(V)).toBe('unlocked')
    expect(fs.existsSync(path.join(vaultDir(V), 'failures.json'))).toBe(false)
    // no password on a terminal: a usage error that says how
    const noTty = run(['volume', 'vault', 'unlock', V], '')
    expect(noTty.status).toBe(2)
    expect(noTty.stderr).toMatch(/--password-stdin/)
    // on a terminal: asked for, not echoed
    ok(['volume', 'vault', 'lock', V])
    const pty = await import('node-pty')
    const p = pty.spawn(VELO, ['volume', 'vault', 'unlock', V], {cols: 100, rows: 30, env: {...process.env, VELO_HOME: sb.home} as Record<string, string>})
    let out = ''
    p.onData((d) => (out += d))
    const exited = new Promise<number>((r) => p.onExit((e) => r(e.exitCode)))
    for (let i = 0; i < 500 && !/password for the vault/.test(out); i++) await new Promise((r) => setTimeout(r, 20))
    p.write(PW + '\r')
    expect(await exited, out).toBe(0)
    expect(out).not.toContain(PW)
    expect(out).toMatch(/unlocked/)
    expect(stateOf(V)).toBe('unlocked')
  })

  it("a mount namespace made while the vault was mounted: an unlock waits for it to let its copy go, and refuses one that keeps it", async () => {
    const {V, mnt} = newVault()
    ok(['volume', 'umount', mnt])
    // a copy of every host mount, the vault's among them, in a private namespace (any tenant or container start
    // makes one); the first ends after 1 s, the second holds it until killed
    const copy = (secs: number) => spawn('unshare', ['-m', '--propagation', 'private', 'sleep', String(secs)], {stdio: 'ignore'})
    const inNs = (c: ReturnType<typeof spawn>) => fs.readFileSync(`/proc/${c.pid}/mountinfo`, 'utf8').includes(vaultDir(V))
    for (const [secs, unlocks] of [[1, true], [600, false]] as Array<[number, boolean]>) {
      const c = copy(secs)
      const gone = new Promise((r) => c.on('close', r))
      try {
        for (let i = 0; i < 250 && !(c.pid && fs.existsSync(`/proc/${c.pid}/mountinfo`) && inNs(c)); i++) await new Promise((r) => setTimeout(r, 20))
        expect(inNs(c), 'the namespace has its copy of the vault').toBe(true)
        ok(['volume', 'vault', 'lock', V])
        const u = run(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
        if (unlocks) expect(u.status, u.stderr).toBe(0)
        else {
          expect(u.status).toBe(1)
          // named: the namespace's process, found by the loop device in its mountinfo
          expect(u.stderr).toMatch(new RegExp(`BUSY.*still mounted in the mount namespaces of processes .*\\b${c.pid} \\(sleep\\)`))
          expect(u.stderr).toMatch(/suggestion: end those processes/)
          expect(stateOf(V)).toBe('locked')
        }
      } finally {
        c.kill('SIGKILL')
        await gone
      }
    }
    // its holder gone, the vault unlocks
    ok(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
    expect(stateOf(V)).toBe('unlocked')
  })

  it("a tenant's symlink in place of .snapshots or .vault sends no directory or mount of root's elsewhere", () => {
    const {V, mnt} = newVault()
    ok(['volume', 'snapshot', V, 's1'])
    ok(['volume', 'umount', mnt])
    ok(['volume', 'vault', 'lock', V])
    // what a tenant with the volume mounted writable can do to the volume's root (its root owns it; done here from
    // the host on the same files): both names made symlinks to a host dir
    const elsewhere = path.join(work, `elsewhere-${V}`)
    fs.mkdirSync(elsewhere)
    sh(`cd ${dataDir(V)} && rm -rf .snapshots && ln -s ${elsewhere} .snapshots && ln -s ${elsewhere} .vault`)
    const mount = run(['volume', 'mount', V, mnt])
    expect(mount.status).toBe(1)
    expect(mount.stderr).toMatch(/\.snapshots/)
    const unlock = run(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
    expect(unlock.status).toBe(1)
    expect(unlock.stderr).toMatch(/STATE.*\.vault/)
    // nothing was made or mounted there, and nothing of the vault is left mounted
    expect(fs.readdirSync(elsewhere)).toEqual([])
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(elsewhere)
    expect(stateOf(V)).toBe('locked')
    // put right, both work again
    sh(`rm ${dataDir(V)}/.snapshots ${dataDir(V)}/.vault && mkdir ${dataDir(V)}/.snapshots`)
    ok(['volume', 'mount', V, mnt])
    ok(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
    expect(fs.readdirSync(mnt).sort()).toEqual(['.snapshots', '.vault'])
    expect(fs.readdirSync(path.join(mnt, '.snapshots'))).toEqual(['s1'])
  })

  it('on a host whose mounts are shared (systemd\'s default), nothing velo binds propagates back into the data dir', () => {
    // the store inside a shared mount: a plain `mount --bind DATA DIR` would join its peer group, and the vault (and
    // snapshots) bound below DIR would show up inside DATA, where a snapshot reads
    const shared = path.join(work, 'shared')
    fs.mkdirSync(shared)
    sh(`mount --bind ${shared} ${shared} && mount --make-shared ${shared}`)
    const sb2 = new SandboxHome([], path.join(shared, 'home'))
    try {
      const V = uniq('sv')
      const r = (args: string[], input?: string) => {
        const x = velo(sb2.home, args, input === undefined ? {} : {input})
        expect(x.status, `${args.join(' ')}: ${x.stderr}`).toBe(0)
      }
      r(['volume', 'create', V])
      r(['volume', 'vault', 'create', V, '--password-stdin', '--size', '32m'], PW)
      const mnt = path.join(shared, 'mnt')
      fs.mkdirSync(mnt)
      r(['volume', 'mount', V, mnt])
      try {
        fs.writeFileSync(path.join(mnt, '.vault', 'k'), 'vault-only-5ec12e7\n')
        const data = path.join(sb2.home, 'volumes', V, 'data')
        // in the host's namespace the data dir's .vault is the plain (empty) mount point, not the vault
        expect(fs.statSync(path.join(data, '.vault')).dev).toBe(fs.statSync(data).dev)
        expect(fs.readdirSync(path.join(data, '.vault'))).toEqual([])
        expect(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(data + '/'))).toEqual([])
        r(['volume', 'snapshot', V, 's1'])
        expect(sh(`grep -rl vault-only-5ec12e7 ${sb2.home}/cas || true`)).toBe('')
        r(['volume', 'vault', 'lock', V])
        expect(fs.existsSync(path.join(data, '.vault'))).toBe(false)
      } finally {
        velo(sb2.home, ['volume', 'umount', mnt])
        velo(sb2.home, ['volume', 'vault', 'lock', V])
      }
    } finally {
      expect(sb2.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
      sh(`umount ${shared}`)
    }
  })

  it('snapshots leave the vault out; restore and rm wait for a lock; a host restart leaves it locked and unlockable', () => {
    const {V, mnt} = newVault()
    sh(`echo vault-only-5ec12e7 > ${mnt}/.vault/s && echo plain > ${mnt}/p`)
    ok(['volume', 'snapshot', V, 's1'])
    const out = path.join(work, `co-${V}`)
    ok(['image', 'checkout', `volume:${V}:s1`, out])
    expect(fs.readdirSync(out).sort()).toEqual(['.snapshots', 'p'])
    expect(sh(`grep -rl vault-only-5ec12e7 ${sb.home}/cas || true`)).toBe('')
    const restore = run(['volume', 'restore', V, 's1'])
    expect(restore.status).toBe(1)
    expect(restore.stderr).toMatch(/BUSY.*vault.*unlocked/)
    ok(['volume', 'umount', mnt])
    const rm = run(['volume', 'rm', V])
    expect(rm.stderr).toMatch(/BUSY.*vault/)

    // what a reboot does: the vault's filesystem unmounted without a lock (its empty mount point left on disk)
    sh(`umount ${vaultDir(V)}/mnt`)
    expect(stateOf(V)).toBe('locked')
    ok(['volume', 'mount', V, mnt])
    expect(fs.readdirSync(mnt).sort()).toEqual(['.snapshots', 'p']) // absent, as locked
    ok(['volume', 'umount', mnt])
    ok(['volume', 'restore', V, 's1'])
    // what an unlock killed between its mount and its key leaves: the image mounted, no key — locked, ciphertext
    // names only; the next unlock finishes that state and unlocks
    sh(`mount -t ext4 -o loop,nosuid,nodev ${vaultDir(V)}/disk.img ${vaultDir(V)}/mnt`)
    expect(stateOf(V)).toBe('locked')
    expect(fs.readdirSync(path.join(vaultDir(V), 'mnt', 'files'))).not.toContain('s')
    ok(['volume', 'mount', V, mnt])
    expect(fs.readdirSync(mnt).sort()).toEqual(['.snapshots', 'p'])
    ok(['volume', 'vault', 'unlock', V, '--password-stdin'], PW)
    expect(fs.readFileSync(path.join(mnt, '.vault', 's'), 'utf8')).toBe('vault-only-5ec12e7\n')
    ok(['volume', 'umount', mnt])
    ok(['volume', 'vault', 'lock', V])
    ok(['volume', 'rm', V])
    expect(fs.existsSync(path.join(sb.home, 'volumes', V))).toBe(false)
  })
})
