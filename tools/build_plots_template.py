"""Build configs/dvc/plots.html: DVC's plots page with vega, vega-lite and vega-embed inline, so that
`dvc plots show` renders offline (DVC's default page loads them from a CDN and is blank without a network).
The versions are the ones dvc-render's default page loads. Needs npm and its registry once; the output is
committed, and .dvc/config points `plots.html_template` at it.

    python tools/build_plots_template.py
"""

import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGES = [
    ("vega", "5.20.2", "vega.min.js"),
    ("vega-lite", "5.2.0", "vega-lite.min.js"),
    ("vega-embed", "6.18.2", "vega-embed.min.js"),
]
OUT = Path(__file__).resolve().parent.parent / "configs" / "dvc" / "plots.html"
PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>safealign: DVC plots</title>
    <!-- DVC's default page loads vega from a CDN and is blank offline; this one carries the same versions inline.
         Built by tools/build_plots_template.py; set in .dvc/config (plots.html_template). -->
{scripts}
    <style>table {{ border-spacing: 15px; }} body {{ font-family: sans-serif; }}</style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main() -> None:
    scripts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, js in PACKAGES:
            subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=tmp, check=True, capture_output=True)
            with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as tar:
                src = tar.extractfile(f"package/build/{js}").read().decode()
            if "</script" in src or "{plot_divs}" in src or "{scripts}" in src:
                raise SystemExit(f"{name}: its code would break the page template")
            scripts.append(
                f"<script>/* {name} {version} (BSD-3-Clause, University of Washington Interactive Data Lab), "
                f"from the npm package */\n{src}\n</script>"
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(PAGE.format(scripts="\n".join(scripts)))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
