import {execute} from '@oclif/core'

// One bundle holds the entry, @oclif/core and the command registry (oclif "explicit" strategy target).
export {COMMANDS} from './commands'

export async function run(dir: string): Promise<void> {
  await execute({dir})
}
