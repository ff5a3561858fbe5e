"""Entry file of the SparkApplication (``mainApplicationFile: local:///opt/coattail/jobs/spark_main.py``).

spark-submit runs this file with the image's Python; it hands over to ``coattail pipeline run`` with the
SparkApplication's ``arguments``, so the pipeline has one command line in every profile.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from coattail.cli import main as coattail_main

    sys.argv = ["coattail", "pipeline", "run", *(sys.argv[1:] if argv is None else argv)]
    coattail_main()


if __name__ == "__main__":
    main()
