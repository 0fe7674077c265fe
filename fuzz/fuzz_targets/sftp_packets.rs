//! Fuzzes the SFTP packet reader (`torsion_conch::sftp::parse_request`): the input is cut
//! into packets as the session cuts them (a 4-byte length, then the body); any body parses
//! or is refused, never panics, and nothing parsed is larger than the body it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion_conch::sftp::{parse_request, Op};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..];
        let body = &body[..len.min(body.len())];
        if let Ok(req) = parse_request(body) {
            let size = match &req.op {
                Op::Open { path, .. } => path.len(),
                Op::Write { handle, data, .. } => handle.len() + data.len(),
                Op::Rename(a, b) => a.len() + b.len(),
                Op::Close(h) | Op::Fstat(h) | Op::ReadDir(h) => h.len(),
                Op::Read { handle, .. } | Op::FSetStat(handle, _) => handle.len(),
                Op::Lstat(p)
                | Op::SetStat(p, _)
                | Op::OpenDir(p)
                | Op::Remove(p)
                | Op::MkDir(p, _)
                | Op::RmDir(p)
                | Op::RealPath(p)
                | Op::Stat(p)
                | Op::ReadLink(p)
                | Op::Extended(p) => p.len(),
                Op::Init(_) | Op::Symlink | Op::Unknown(_) => 0,
            };
            assert!(size <= body.len());
        }
        rest = &rest[4 + body.len()..];
    }
});
