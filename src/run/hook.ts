// The shell hook of inception mode. Its own module with no imports: `eval "$(velo hook)"` runs in every new
// shell, so printing it must not load the store, lmdb or the projection code.

/** The variables a .velo/env file sets and the hook saves/restores on entering/leaving the directory. */
export const HOOK_VARS = ['LD_PRELOAD', 'VELO_SHIM_CAS', 'VELO_SHIM_IMAGE', 'UV_USE_IO_URING', 'VELO_SHIM_PHANTOM_ROOT', 'VELO_SHIM_PHANTOM_SKEL']

/** `velo hook --shell bash|zsh`: shell code that enters/leaves the projection environment as you cd. */
export function hookScript(shell: 'bash' | 'zsh'): string {
  const vars = HOOK_VARS.join(' ')
  const body = `
_velo_hook() {
  local d="$PWD" f=""
  while :; do
    if [ -f "$d/.velo/env" ]; then f="$d/.velo/env"; break; fi
    [ "$d" = / ] && break
    d="\${d%/*}"; [ -z "$d" ] && d=/
  done
  [ "$f" = "\${_VELO_ACTIVE-}" ] && return
  if [ -n "\${_VELO_ACTIVE-}" ]; then
    local v
    for v in ${vars}; do
      eval "if [ -n \\"\\\${_VELO_SAVED_\$v+x}\\" ]; then export \$v=\\"\\\$_VELO_SAVED_\$v\\"; else unset \$v; fi; unset _VELO_SAVED_\$v"
    done
    unset _VELO_ACTIVE
  fi
  if [ -n "$f" ]; then
    local v
    for v in ${vars}; do
      eval "if [ -n \\"\\\${\$v+x}\\" ]; then _VELO_SAVED_\$v=\\"\\\$\$v\\"; fi"
    done
    . "$f"
    _VELO_ACTIVE="$f"
  fi
}
`
  if (shell === 'zsh') return `${body}\nautoload -Uz add-zsh-hook\nadd-zsh-hook precmd _velo_hook\nadd-zsh-hook chpwd _velo_hook\n_velo_hook\n`
  return `${body}\ncase ";\${PROMPT_COMMAND-};" in *";_velo_hook;"*) ;; *) PROMPT_COMMAND="_velo_hook\${PROMPT_COMMAND:+;\$PROMPT_COMMAND}";; esac\n_velo_hook\n`
}
