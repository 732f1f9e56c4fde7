//! velo-b3 [--] FILE...: print "<blake3 hex> <size>" for each file, one line each.
//! Files are memory-mapped and hashed with rayon across all cores; empty or unmappable files are read.
//! Exit status 1 with "velo-b3: FILE: error" on stderr for the first file that cannot be read.
use std::fs::File;
use std::io::{self, Read, Write};
use std::process::exit;

/// 64 MiB: a power of two, so every window starts on a BLAKE3 chunk and subtree boundary.
const WINDOW: u64 = 64 << 20;

fn hash(path: &str) -> io::Result<(blake3::Hash, u64)> {
    let f = File::open(path)?;
    let size = f.metadata()?.len();
    let mut h = blake3::Hasher::new();
    // Map and hash WINDOW bytes at a time: each window is hashed on all cores (its BLAKE3 subtrees are
    // independent) and unmapped before the next, so resident memory stays at one window whatever the file
    // size. SAFETY: a file truncated while mapped raises SIGBUS, which kills this helper and fails the
    // ingest: never a wrong hash under a good name.
    let mut off: u64 = 0;
    while off < size {
        let len = std::cmp::min(WINDOW, size - off) as usize;
        match unsafe { memmap2::MmapOptions::new().offset(off).len(len).map(&f) } {
            Ok(m) => {
                h.update_rayon(&m);
                off += len as u64;
            }
            Err(_) => return read_hash(f, size), // not mappable (e.g. a pipe-like file): plain reads
        }
    }
    Ok((h.finalize(), size))
}

fn read_hash(mut f: File, size: u64) -> io::Result<(blake3::Hash, u64)> {
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(0))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok((h.finalize(), size))
}

fn main() {
    let out = io::stdout();
    let mut out = out.lock();
    for path in std::env::args().skip(1).filter(|a| a != "--") {
        match hash(&path) {
            Ok((digest, size)) => {
                let _ = writeln!(out, "{} {}", digest.to_hex(), size);
            }
            Err(e) => {
                eprintln!("velo-b3: {}: {}", path, e);
                exit(1);
            }
        }
    }
}
