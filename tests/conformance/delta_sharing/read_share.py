"""Reads an agora share with the official Delta Sharing client and prints what it saw as JSON.

Usage: read_share.py PROFILE SHARE TABLE
"""

import json
import re
import sys

import delta_sharing


def main() -> None:
    profile, share, table = sys.argv[1:4]
    url = f"{profile}#{share}.default.{table}"
    client = delta_sharing.SharingClient(profile)
    tables = [f"{t.share}.{t.schema}.{t.name}" for t in client.list_all_tables()]
    shares = [s.name for s in client.list_shares()]
    version = delta_sharing.get_table_version(url)
    frame = delta_sharing.load_as_pandas(url)
    limited = delta_sharing.load_as_pandas(url, limit=10)
    pseudonyms = frame["patient_id"].astype(str) if "patient_id" in frame.columns else None
    print(
        json.dumps(
            {
                "tables": tables,
                "shares": shares,
                "version": version,
                "rows": len(frame),
                "limited_rows": len(limited),
                "columns": list(frame.columns),
                "patient_ids_are_pseudonyms": bool(
                    pseudonyms is not None
                    and pseudonyms.map(lambda v: re.fullmatch(r"[0-9a-f]{32}", v) is not None).all()
                ),
                "patient_id_sample": None if pseudonyms is None else pseudonyms.head(3).tolist(),
                "hex32_columns": [
                    c
                    for c in frame.columns
                    if frame[c].map(lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{32}", v) is not None).all()
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
