//! `serve --demo`: three sector pools with deterministic Parquet data and DCAT-AP
//! descriptions, development tokens printed for every role.

use crate::common::{Options, TestNode};
use parquet::file::reader::{FileReader, SerializedFileReader};

#[test]
fn demo_serves_three_sector_pools_with_their_data() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let printed = node.stdout_lines.join("\n");
    for role in ["holder", "researcher", "trainer", "admin"] {
        assert!(
            printed.contains(&format!("  {role}: ey")),
            "no {role} token printed: {printed}"
        );
    }
    for (pool, theme, columns) in [
        (
            "health",
            "HEAL",
            vec![
                "patient_id",
                "birth_date",
                "icd10_code",
                "hba1c",
                "consent_secondary_use",
            ],
        ),
        (
            "mobility",
            "TRAN",
            vec!["vehicle_id", "start_time", "origin_lat", "dest_lon", "mode"],
        ),
        (
            "climate",
            "ENVI",
            vec![
                "station_id",
                "observed_at",
                "temperature_c",
                "precipitation_mm",
                "wind_speed_ms",
            ],
        ),
    ] {
        let response = node.get(
            &format!("/api/datasets/{pool}"),
            &[("accept", "text/turtle")],
        );
        assert_eq!(response.status, 200, "{pool}: {}", response.text());
        let text = response.text();
        assert!(text.contains(&format!("data-theme/{theme}")), "{pool}");
        assert!(text.contains("hasPolicy"), "{pool} has no policy");

        let folder = node.data_dir.join("pools").join(pool);
        let mut rows = 0i64;
        let mut files = 0;
        for entry in std::fs::read_dir(&folder).expect("pool folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "parquet") {
                let reader = SerializedFileReader::new(std::fs::File::open(&path).expect("open"))
                    .expect("parquet");
                let schema = reader.metadata().file_metadata().schema_descr();
                for column in &columns {
                    assert!(
                        schema.columns().iter().any(|c| c.name() == *column),
                        "{pool} lacks {column}"
                    );
                }
                rows += reader.metadata().file_metadata().num_rows();
                files += 1;
            }
        }
        assert!(files >= 4, "{pool}: {files} files");
        assert!(rows >= 200_000, "{pool}: {rows} rows");
    }
}

#[test]
fn demo_data_is_deterministic() {
    let first = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let second = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    for pool in ["health", "mobility", "climate"] {
        let bytes = |node: &TestNode| {
            std::fs::read(
                node.data_dir
                    .join("pools")
                    .join(pool)
                    .join("part-00000.parquet"),
            )
            .expect("file")
        };
        assert!(
            bytes(&first) == bytes(&second),
            "{pool} differs between runs"
        );
    }
}
