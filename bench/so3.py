"""SO(3) benchmark: 1,000,000 rotations through matrix <-> quaternion <-> Euler ZYZ and
composition, cryomath against scipy and roma in the same run, and the matrix versus quaternion
path for rotating many points.

    python bench/so3.py [--n 1000000] [--threads 2] [--repeat 3]

Prints one line per operation: best-of-repeat seconds for each library and the ratios
(scipy / cryomath > 1 means cryomath is faster). float64, CPU.
"""

import argparse
import time

import roma
import torch
from scipy.spatial.transform import Rotation

from cryomath import so3


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n, r = args.n, args.repeat

    scipy_rot = Rotation.random(n, random_state=0)
    m_np = scipy_rot.as_matrix()
    m = torch.from_numpy(m_np)
    q = so3.quaternion_from_matrix(m)
    q_xyzw = roma.quat_wxyz_to_xyzw(q)
    q_xyzw_np = q_xyzw.numpy()
    zyz = so3.euler_from_matrix(m, "ZYZ")
    zyz_np = zyz.numpy()
    other = torch.from_numpy(Rotation.random(n, random_state=1).as_matrix())
    other_scipy = Rotation.from_matrix(other.numpy())
    other_q = so3.quaternion_from_matrix(other)
    other_q_xyzw = roma.quat_wxyz_to_xyzw(other_q)

    cases = [
        (
            "matrix -> quaternion",
            lambda: so3.quaternion_from_matrix(m),
            lambda: Rotation.from_matrix(m_np).as_quat(),
            lambda: roma.rotmat_to_unitquat(m),
        ),
        (
            "quaternion -> matrix",
            lambda: so3.matrix_from_quaternion(q),
            lambda: Rotation.from_quat(q_xyzw_np).as_matrix(),  # both normalise
            lambda: roma.unitquat_to_rotmat(q_xyzw),
        ),
        (
            "matrix -> Euler ZYZ",
            lambda: so3.euler_from_matrix(m, "ZYZ"),
            lambda: Rotation.from_matrix(m_np).as_euler("ZYZ"),
            lambda: roma.rotmat_to_euler("ZYZ", m),
        ),
        (
            "Euler ZYZ -> matrix",
            lambda: so3.matrix_from_euler(zyz, "ZYZ"),
            lambda: Rotation.from_euler("ZYZ", zyz_np).as_matrix(),
            lambda: roma.euler_to_rotmat("ZYZ", zyz),
        ),
        (
            "compose matrices",
            lambda: so3.compose(m, other),
            lambda: (scipy_rot * other_scipy).as_matrix(),
            lambda: roma.rotmat_composition((m, other)),
        ),
        (
            "compose quaternions",
            lambda: so3.compose_quaternions(q, other_q),
            lambda: scipy_rot * other_scipy,
            lambda: roma.quat_composition((q_xyzw, other_q_xyzw), normalize=True),
        ),
    ]
    print(f"n = {n:,} rotations, float64, torch threads = {args.threads}, best of {r}")
    print(
        f"{'operation':24s} {'cryomath':>9s} {'scipy':>9s} {'roma':>9s} {'scipy/ours':>11s} "
        f"{'roma/ours':>10s}"
    )
    for name, ours, scipy_f, roma_f in cases:
        t_ours, t_scipy, t_roma = best(ours, r), best(scipy_f, r), best(roma_f, r)
        print(
            f"{name:24s} {t_ours:9.4f} {t_scipy:9.4f} {t_roma:9.4f} {t_scipy / t_ours:11.2f} "
            f"{t_roma / t_ours:10.2f}"
        )

    # rotating points: 1,000 rotations x 1,000 points (the study-group question)
    rotations = m[:1000]
    quats = q[:1000]
    points = torch.randn(1000, 1000, 3, dtype=torch.float64)
    t_matrix = best(lambda: so3.rotate_points(rotations, points), r)
    t_quat = best(lambda: so3.rotate_points_quaternion(quats, points), r)
    t_scipy = (
        best(lambda: [scipy_rot[i].apply(points[i].numpy()) for i in range(100)], r) * 10
    )  # 100 of the 1,000 rotations, scaled
    print(
        f"rotate 1e3 x 1e3 points: matrix {t_matrix:.4f} s, quaternion {t_quat:.4f} s "
        f"(quaternion/matrix {t_quat / t_matrix:.2f}), scipy apply loop {t_scipy:.4f} s"
    )


if __name__ == "__main__":
    main()
