"""Manual and demo use of the test infrastructure.

    python -m support samples DIR
        write every sample image as DIR/<name> (skopeo dir: layout) and the OCI ones into
        the OCI layout DIR/oci-layout (ref = sample name); prints name, media type, digest
    python -m support serve [--auth htpasswd|token] [--tls] [--client-cert]
                                     [--root DIR] [--seed] [--delay-ms N]
        run a real docker-registry until Ctrl-C; --seed pushes the sample set
        (at samples/<name>:latest, schema1 at fastsync/schema1:v1); --delay-ms puts a
        DelayProxy in front and prints its address too
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Optional

from . import images


def _samples(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, image in images.sample_set().items():
        images.write_dir(image, out / name)
        if image.media_type in (images.OCI_MANIFEST, images.OCI_INDEX):
            images.write_oci(image, out / "oci-layout", name)
        print(f"{name:10} {image.media_type:60} {image.digest}")


def _serve(args: argparse.Namespace) -> None:
    from .proxy import DelayProxy
    from .registry import Registry

    reg = Registry(auth=args.auth, tls=args.tls, client_cert=args.client_cert, root=args.root)
    proxy: Optional[DelayProxy] = None
    try:
        reg.start()
        if args.seed:
            for name, image in images.sample_set().items():
                repo, tag = images.sample_repo(name)
                reg.push_image(image, repo, tag)
        print(f"registry  {reg.url}  storage {reg.root}")
        if reg.creds:
            print(f"creds     {reg.creds}")
        if reg.cert_dir:
            print(f"cert-dir  {reg.cert_dir}")
        if args.delay_ms:
            proxy = DelayProxy("127.0.0.1", reg.port, args.delay_ms).start()
            print(f"delayed   {proxy.host} (+{args.delay_ms} ms each way)")
        print("Ctrl-C to stop", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proxy is not None:
            proxy.stop()
        reg.cleanup()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("samples", help="write the sample images")
    p.add_argument("dir", type=Path)
    p = sub.add_parser("serve", help="run a real docker-registry")
    p.add_argument("--auth", choices=["htpasswd", "token"])
    p.add_argument("--tls", action="store_true")
    p.add_argument("--client-cert", action="store_true")
    p.add_argument("--root", type=Path)
    p.add_argument("--seed", action="store_true")
    p.add_argument("--delay-ms", type=float, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "samples":
        _samples(args.dir)
    else:
        _serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
