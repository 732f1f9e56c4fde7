import {describe, expect, it} from 'vitest'
import {configFromDocker, configToDocker, hostGoArch} from '../../src/image/config'

describe('image config fields', () => {
  const docker = {
    Env: ['PATH=/bin', 'A=1'],
    Cmd: ['sh'],
    Entrypoint: ['/init'],
    WorkingDir: '/srv',
    User: '1000:1000',
    Labels: {a: 'b'},
    ExposedPorts: {'80/tcp': {}},
    Volumes: {'/data': {}},
    StopSignal: 'SIGINT',
  }

  it('keeps every field velo stores, and writes the same Docker config back', () => {
    const c = configFromDocker({architecture: 'arm64', os: 'linux', config: docker})
    expect(c).toEqual({
      env: docker.Env, cmd: docker.Cmd, entrypoint: docker.Entrypoint, workingDir: '/srv', user: '1000:1000',
      labels: docker.Labels, exposedPorts: docker.ExposedPorts, volumes: docker.Volumes, stopSignal: 'SIGINT',
      architecture: 'arm64', os: 'linux',
    })
    expect(configToDocker(c)).toEqual(docker)
  })

  it('leaves out fields of the wrong type and empty strings (an image config is anyone\'s input)', () => {
    const c = configFromDocker({config: {Env: 'PATH=/bin', Cmd: null, WorkingDir: '', User: 7, Labels: ['x'], StopSignal: {}}})
    expect(c).toEqual({})
    expect(configToDocker({})).toEqual({})
  })

  it('names the host architecture as Go does', () => {
    // what Docker calls this machine's platform: the name export writes and import picks a manifest by
    expect(hostGoArch()).toBe({x64: 'amd64', arm64: 'arm64', ia32: '386', ppc64: 'ppc64le'}[process.arch as string] ?? process.arch)
  })
})
