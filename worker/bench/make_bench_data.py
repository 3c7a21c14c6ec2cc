#!/usr/bin/python3
"""Dataset artifacts for the worker bench: Debian's Fashion-MNIST splits, each as a tar of
its two gzipped IDX files, as a user would upload them. Usage: make_bench_data.py OUT_DIR"""
import os
import sys
import tarfile

SOURCE = "/usr/share/datasets/fashion-mnist"


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for tar_name, prefix in (("fashion_full_train.tar", "train"), ("fashion_full_test.tar", "t10k")):
        with tarfile.open(os.path.join(out, tar_name), "w", format=tarfile.USTAR_FORMAT) as tar:
            for kind in ("images-idx3", "labels-idx1"):
                name = f"{prefix}-{kind}-ubyte.gz"
                info = tar.gettarinfo(os.path.join(SOURCE, name), arcname=name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(os.path.join(SOURCE, name), "rb") as f:
                    tar.addfile(info, f)


if __name__ == "__main__":
    main()
