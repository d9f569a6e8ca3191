//! The AMX kernel: 32 × 32 blocks from four 16 × 16 f32 accumulator tiles.
#![allow(
    unsafe_code,
    reason = "AMX has no stable intrinsics; its instructions are written as inline assembly"
)]

use std::arch::asm;
use std::sync::OnceLock;

/// `arch_prctl` request that asks Linux for an extended state component.
const ARCH_REQ_XCOMP_PERM: libc::c_ulong = 0x1023;
/// The AMX tile data state component.
const XFEATURE_XTILEDATA: libc::c_ulong = 18;

/// Whether the CPU has AMX-BF16 and Linux let this process use the tiles.
pub(crate) fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        // CPUID leaf 7, sub-leaf 0, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE.
        let leaf = std::arch::x86_64::__cpuid_count(7, 0);
        if leaf.edx & (1 << 22) == 0 || leaf.edx & (1 << 24) == 0 {
            return false;
        }
        // Linux keeps the 8 KiB tile state off until a process asks for it
        // (kernel 5.16+); the grant covers every thread of the process.
        // A refusal (a kernel older than 5.16) leaves the next kernel in charge.
        // SAFETY: arch_prctl with this request only reads its integer argument.
        unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
    })
}

/// The tile configuration (palette 1): tiles 0–7 all 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// `out[32][32] = a_rows[32][k] · weights` for two packed column blocks
/// (`[2][k/2][16][2]`); `k` is a multiple of 32.
///
/// Tiles 4–5 hold 16 rows × 32 inputs of `a`, tiles 6–7 the matching 16
/// input pairs × 16 columns of each block, tiles 0–3 the four quarters of
/// the output; each step of 32 inputs is four `tdpbf16ps`.
pub(crate) fn block(a_rows: &[u16], k: usize, weights: &[u16], out: &mut [f32]) {
    assert!(usable(), "the AMX kernel runs only where AMX was granted");
    assert!(
        k.is_multiple_of(32) && a_rows.len() == 32 * k,
        "a is 32 rows of k = 32·j bf16"
    );
    assert!(
        weights.len() == 2 * 16 * k && out.len() == 32 * 32,
        "two column blocks, 32 × 32 out"
    );
    let a = a_rows.as_ptr();
    let b = weights.as_ptr();
    let a_stride = k * 2;
    let block_stride = 16 * k;
    let c = out.as_mut_ptr();
    // SAFETY: AMX is granted (checked above). Every tile load reads 16 rows
    // of 64 bytes inside the slices: a's rows `r..r+16` at input offset
    // `step·32`, and 1 KiB of a weight block at `step·512` elements, all in
    // bounds by the length checks above. The stores write 16 rows of 64
    // bytes into `out`, whose 32 × 32 f32 (128-byte rows) hold them. The
    // configuration is loaded on this thread before any tile is touched, and
    // no other code on this thread uses tiles between these blocks (the
    // kernel makes no calls), so the tile registers are ours throughout.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly));
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for step in 0..k / 32 {
            let a_top = a.add(step * 32);
            let a_bottom = a_top.add(16 * k);
            let b_left = b.add(step * 16 * 32);
            let b_right = b_left.add(block_stride);
            asm!(
                "tileloadd tmm4, [{a_top} + {a_stride}*1]",
                "tileloadd tmm5, [{a_bottom} + {a_stride}*1]",
                "tileloadd tmm6, [{b_left} + {b_stride}*1]",
                "tileloadd tmm7, [{b_right} + {b_stride}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a_top = in(reg) a_top,
                a_bottom = in(reg) a_bottom,
                b_left = in(reg) b_left,
                b_right = in(reg) b_right,
                a_stride = in(reg) a_stride,
                b_stride = in(reg) 64usize,
                options(nostack, readonly)
            );
        }
        asm!(
            "tilestored [{c} + {stride}*1], tmm0",
            "tilestored [{c_right} + {stride}*1], tmm1",
            "tilestored [{c_bottom} + {stride}*1], tmm2",
            "tilestored [{c_bottom_right} + {stride}*1], tmm3",
            "tilerelease",
            c = in(reg) c,
            c_right = in(reg) c.add(16),
            c_bottom = in(reg) c.add(16 * 32),
            c_bottom_right = in(reg) c.add(16 * 32 + 16),
            stride = in(reg) 128usize,
            options(nostack)
        );
    }
}
