import * as fs from 'node:fs'

/**
 * The lines of /proc/PID/mountinfo of every mount namespace on this host, each namespace read once (through any
 * process in it): what "is this mounted anywhere" needs, since a tenant's mounts are in namespaces of its own.
 * complete: false when some namespace could not be read for another reason than those below: a caller about to
 * remove what might be mounted there must not.
 */
export function mountinfoEverywhere(): {lines: string[]; complete: boolean} {
  const seen = new Set<string>()
  const lines: string[] = []
  let complete = true
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    let info: string
    try {
      const ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`)
      if (seen.has(ns)) continue
      info = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      seen.add(ns) // once read: another process of it may be readable when this one was not
    } catch (err) {
      // gone meanwhile; or not ours to look at (EACCES even for root: a process of an ancestor user namespace, such
      // as a VM's or container host's init — velo's tenants live in namespaces velo made, which this user can read)
      if (!['ENOENT', 'ESRCH', 'EACCES', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '')) complete = false
      continue
    }
    for (const line of info.split('\n')) if (line) lines.push(line)
  }
  return {lines, complete}
}
