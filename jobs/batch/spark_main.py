"""Entry file of the batch SparkApplications (``batch.spark_application.main_application_file``).

spark-submit runs this file with the image's Python; it hands over to ``coattail batch`` with the
application's ``arguments`` (e.g. ``reprocess --as-of-snapshot … --swap``), so a step runs the same
code on the cluster as it does locally. The Spark image copies it to /opt/coattail/jobs/.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from coattail.cli import main as coattail_main

    sys.argv = ["coattail", "batch", *(sys.argv[1:] if argv is None else argv)]
    coattail_main()


if __name__ == "__main__":
    main()
