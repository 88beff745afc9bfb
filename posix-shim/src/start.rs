//! The Linux initial stack a program's `_start` expects (System V ABI, both architectures):
//!
//! ```text
//! sp ->  argc
//!        argv[0] ... argv[argc-1], NULL
//!        envp[0] ... NULL
//!        auxv: (key, value) pairs ..., (AT_NULL, 0)
//!        padding
//!        AT_RANDOM's 16 bytes, AT_PLATFORM's string, the argument and environment strings
//! top
//! ```
//!
//! [`build`] is pure (host-tested): it writes into a byte buffer that will live at a given
//! address. `run.rs` supplies the auxiliary vector of the image.

use crate::abi::auxv::{AT_EXECFN, AT_NULL, AT_PLATFORM, AT_RANDOM};
use alloc::vec::Vec;

/// Why an initial stack could not be built.
#[derive(Debug, PartialEq, Eq)]
pub enum StackError {
    /// The strings and vectors do not fit in the buffer.
    TooSmall,
    /// An argument or environment string contains a NUL byte.
    NulInString,
}

/// Writes the initial stack into `stack`, whose first byte is at address `base` (the stack
/// grows down from `base + stack.len()`). `auxv` holds the entries the caller knows; this adds
/// `AT_RANDOM` (pointing at `random`), `AT_PLATFORM` (`platform`), `AT_EXECFN` (`args[0]`) and
/// the terminating `AT_NULL`. Returns the initial stack pointer (16-byte aligned, at `argc`).
pub fn build(
    stack: &mut [u8],
    base: u64,
    args: &[&str],
    env: &[&str],
    auxv: &[(u64, u64)],
    platform: &str,
    random: [u8; 16],
) -> Result<u64, StackError> {
    if args.iter().chain(env).any(|s| s.contains('\0')) {
        return Err(StackError::NulInString);
    }
    let mut top = stack.len();
    let mut push_bytes = |bytes: &[u8], nul: bool, top: &mut usize| -> Result<u64, StackError> {
        let len = bytes.len() + usize::from(nul);
        *top = top.checked_sub(len).ok_or(StackError::TooSmall)?;
        stack[*top..*top + bytes.len()].copy_from_slice(bytes);
        if nul {
            stack[*top + bytes.len()] = 0;
        }
        Ok(base + *top as u64)
    };
    let mut arg_ptrs = Vec::with_capacity(args.len());
    for arg in args {
        arg_ptrs.push(push_bytes(arg.as_bytes(), true, &mut top)?);
    }
    let mut env_ptrs = Vec::with_capacity(env.len());
    for var in env {
        env_ptrs.push(push_bytes(var.as_bytes(), true, &mut top)?);
    }
    let platform_ptr = push_bytes(platform.as_bytes(), true, &mut top)?;
    top &= !15;
    let random_ptr = push_bytes(&random, false, &mut top)?;

    let mut words: Vec<u64> = Vec::with_capacity(3 + args.len() + env.len() + 2 * (auxv.len() + 4));
    words.push(args.len() as u64);
    words.extend(&arg_ptrs);
    words.push(0);
    words.extend(&env_ptrs);
    words.push(0);
    for &(key, value) in auxv {
        words.extend([key, value]);
    }
    words.extend([AT_RANDOM, random_ptr, AT_PLATFORM, platform_ptr]);
    if let Some(&execfn) = arg_ptrs.first() {
        words.extend([AT_EXECFN, execfn]);
    }
    words.extend([AT_NULL, 0]);

    let bytes = words.len() * 8;
    let sp = top.checked_sub(bytes).ok_or(StackError::TooSmall)? & !15;
    for (i, word) in words.iter().enumerate() {
        stack[sp + i * 8..sp + i * 8 + 8].copy_from_slice(&word.to_ne_bytes());
    }
    Ok(base + sp as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::auxv::AT_PAGESZ;

    fn word(stack: &[u8], base: u64, addr: u64) -> u64 {
        let i = (addr - base) as usize;
        u64::from_ne_bytes(stack[i..i + 8].try_into().unwrap())
    }

    fn string(stack: &[u8], base: u64, addr: u64) -> String {
        let i = (addr - base) as usize;
        let end = stack[i..].iter().position(|&b| b == 0).unwrap();
        String::from_utf8(stack[i..i + end].to_vec()).unwrap()
    }

    #[test]
    fn layout_matches_the_system_v_abi() {
        let base = 0x10_0000;
        let mut stack = vec![0u8; 4096];
        let random = *b"0123456789abcdef";
        let sp = build(&mut stack, base, &["prog", "a b"], &["HOME=/"], &[(AT_PAGESZ, 4096)], "x86_64", random).unwrap();
        assert_eq!(sp % 16, 0);
        assert_eq!(word(&stack, base, sp), 2);
        assert_eq!(string(&stack, base, word(&stack, base, sp + 8)), "prog");
        assert_eq!(string(&stack, base, word(&stack, base, sp + 16)), "a b");
        assert_eq!(word(&stack, base, sp + 24), 0);
        assert_eq!(string(&stack, base, word(&stack, base, sp + 32)), "HOME=/");
        assert_eq!(word(&stack, base, sp + 40), 0);
        let mut aux = Vec::new();
        let mut at = sp + 48;
        loop {
            let (key, value) = (word(&stack, base, at), word(&stack, base, at + 8));
            at += 16;
            if key == AT_NULL {
                break;
            }
            aux.push((key, value));
        }
        assert_eq!(aux[0], (AT_PAGESZ, 4096));
        let random_at = aux.iter().find(|(k, _)| *k == AT_RANDOM).unwrap().1;
        let i = (random_at - base) as usize;
        assert_eq!(&stack[i..i + 16], &random);
        let platform = aux.iter().find(|(k, _)| *k == AT_PLATFORM).unwrap().1;
        assert_eq!(string(&stack, base, platform), "x86_64");
        let execfn = aux.iter().find(|(k, _)| *k == AT_EXECFN).unwrap().1;
        assert_eq!(string(&stack, base, execfn), "prog");
    }

    #[test]
    fn too_small_and_nul_are_errors() {
        let mut stack = vec![0u8; 64];
        assert_eq!(build(&mut stack, 0, &["a"; 10], &[], &[], "x", [0; 16]), Err(StackError::TooSmall));
        let mut stack = vec![0u8; 4096];
        assert_eq!(build(&mut stack, 0, &["a\0b"], &[], &[], "x", [0; 16]), Err(StackError::NulInString));
    }
}
