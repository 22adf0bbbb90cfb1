"""The sampler's Gaussian noise, bit for bit the definition the GPU kernel uses, so that
fixtures made here match runs there.

z[i] for element i of step `step` under `seed`: Philox 4x32-10 with key (seed_lo, seed_hi)
and counter (i // 4, step, 0, 0) gives r0..r3; each r becomes u = (r >> 8) * 2^-24 + 2^-25
in (0, 1); Box-Muller on (u0, u1) gives elements 4k and 4k+1 (cos, sin), on (u2, u3)
elements 4k+2 and 4k+3.
"""
import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(c, k):
    """c: [4, n] uint64 holding u32 counters; k: (k0, k1). Returns [4, n] uint64 (u32 values)."""
    c = [x.astype(np.uint64) for x in c]
    k0, k1 = np.uint64(k[0]), np.uint64(k[1])
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(W0)) & np.uint64(MASK)
            k1 = (k1 + np.uint64(W1)) & np.uint64(MASK)
        p0 = c[0] * np.uint64(M0)
        p1 = c[2] * np.uint64(M1)
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(MASK)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(MASK)
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
    return np.stack(c)


def gaussian(seed, step, n):
    """n standard normals (float32) for `step` under `seed`."""
    i = np.arange(n, dtype=np.uint64)
    blocks = (n + 3) // 4
    ctr = np.zeros((4, blocks), dtype=np.uint64)
    ctr[0] = np.arange(blocks, dtype=np.uint64)
    ctr[1] = step
    r = philox4x32_10(ctr, (seed & MASK, (seed >> 32) & MASK))
    u = ((r >> np.uint64(8)).astype(np.float32) * np.float32(2.0 ** -24) + np.float32(2.0 ** -25)).astype(np.float32)
    rad01 = np.sqrt(np.float32(-2.0) * np.log(u[0]))
    rad23 = np.sqrt(np.float32(-2.0) * np.log(u[2]))
    th01 = np.float32(2 * np.pi) * u[1]
    th23 = np.float32(2 * np.pi) * u[3]
    z = np.stack([rad01 * np.cos(th01), rad01 * np.sin(th01), rad23 * np.cos(th23), rad23 * np.sin(th23)], 1)
    return z.reshape(-1)[:n].astype(np.float32)


if __name__ == "__main__":
    # Random123's known-answer vectors for philox4x32_10.
    kat = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
           ((MASK,) * 4, (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
           ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for c, k, want in kat:
        got = philox4x32_10(np.array(c, dtype=np.uint64)[:, None], k)[:, 0]
        assert tuple(int(x) for x in got) == want, (c, [hex(int(x)) for x in got])
    z = gaussian(7, 3, 1 << 16)
    print("philox KAT ok; mean %.4f std %.4f" % (z.mean(), z.std()))
