//! Sector data pools: a manifest per pool in `connectors/` says where its data lives, its
//! schema, its DCAT-AP description and its default policy. With `--demo` the node generates
//! each pool's data deterministically from the manifest's seed, as partitioned Parquet.

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a pool cannot be loaded; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A manifest or description cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A manifest is not valid.
    #[error("the manifest {path} is invalid: {message}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Writing the generated data failed.
    #[error("cannot generate the data of pool `{pool}`: {message}")]
    Generate {
        /// The pool id.
        pool: String,
        /// What failed.
        message: String,
    },
}

/// A pool's manifest (`connectors/<pool>.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The dataset id on the node.
    pub id: String,
    /// The DCAT-AP description (Turtle), relative to the manifest's folder.
    pub description: PathBuf,
    /// The default ODRL policy (JSON-LD), relative to the manifest's folder.
    pub policy: PathBuf,
    /// Where the data is and what it looks like.
    pub data: DataSection,
}

/// The data section of a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// `parquet`.
    pub format: String,
    /// Folder relative to the node's data directory.
    pub path: PathBuf,
    /// Number of Parquet files.
    pub files: usize,
    /// Rows in all.
    pub rows: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// Read the data from this S3-compatible bucket instead of generating it under `path`
    /// (the files there have the manifest's columns).
    #[serde(default)]
    pub s3: Option<super::remote::S3Source>,
    /// The schema.
    pub columns: Vec<Column>,
}

/// One column of a pool's schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// `utf8`, `int64`, `float64`, `bool`, `date32` or `timestamp_ms`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the column holds.
    pub description: String,
}

/// A manifest together with the folder it was read from.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The manifest.
    pub manifest: Manifest,
    /// The folder holding the manifest.
    pub folder: PathBuf,
}

impl Pool {
    /// The DCAT-AP description's Turtle text.
    pub fn description(&self) -> Result<Vec<u8>, PoolError> {
        read(&self.folder.join(&self.manifest.description))
    }

    /// The `uid` of the pool's default policy: a template of `policies/`, which the catalogue
    /// fills in when the description refers to it.
    pub fn policy_uid(&self) -> Result<String, PoolError> {
        let path = self.folder.join(&self.manifest.policy);
        let document: serde_json::Value =
            serde_json::from_slice(&read(&path)?).map_err(|e| PoolError::Manifest {
                path: path.clone(),
                message: e.to_string(),
            })?;
        document
            .get("uid")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or(PoolError::Manifest {
                path,
                message: "the policy has no `uid`".into(),
            })
    }

    /// Where the pool's data lives under `data_dir`.
    pub fn data_path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.manifest.data.path)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PoolError> {
    std::fs::read(path).map_err(|source| PoolError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads every `*.toml` manifest in `folder`, sorted by id.
pub fn load_pools(folder: &Path) -> Result<Vec<Pool>, PoolError> {
    let entries = std::fs::read_dir(folder).map_err(|source| PoolError::Read {
        path: folder.to_owned(),
        source,
    })?;
    let mut pools = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = String::from_utf8(read(&path)?).map_err(|e| PoolError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| PoolError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let generator = Generator::for_pool(&manifest.id).ok_or_else(|| PoolError::Manifest {
            path: path.clone(),
            message: format!(
                "no generator for pool `{}` (health, mobility, climate)",
                manifest.id
            ),
        })?;
        let expected = generator.schema();
        let declared: Vec<(&str, &str)> = manifest
            .data
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind.as_str()))
            .collect();
        let generated: Vec<(&str, &str)> = expected
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), kind_name(f.data_type())))
            .collect();
        if declared != generated {
            return Err(PoolError::Manifest {
                path,
                message: format!("the columns must be exactly {generated:?}"),
            });
        }
        if manifest.data.files == 0 || manifest.data.rows < manifest.data.files {
            return Err(PoolError::Manifest {
                path,
                message: "data.files must be at least 1 and at most data.rows".into(),
            });
        }
        pools.push(Pool {
            manifest,
            folder: folder.to_owned(),
        });
    }
    pools.sort_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
    Ok(pools)
}

fn kind_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Utf8 => "utf8",
        DataType::Int64 => "int64",
        DataType::Float64 => "float64",
        DataType::Boolean => "bool",
        DataType::Date32 => "date32",
        DataType::Timestamp(TimeUnit::Millisecond, _) => "timestamp_ms",
        _ => "unsupported",
    }
}

/// Generates the pool's Parquet files under `data_dir` unless they are already complete.
/// Files are written into a staging folder and renamed into place, so a crash mid-way never
/// leaves a half pool that looks complete.
pub fn ensure_data(pool: &Pool, data_dir: &Path) -> Result<PathBuf, PoolError> {
    let target = pool.data_path(data_dir);
    let fingerprint = format!(
        "{}:{}:{}:{}",
        pool.manifest.id,
        pool.manifest.data.rows,
        pool.manifest.data.files,
        pool.manifest.data.seed
    );
    let marker = target.join("_SUCCESS");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == fingerprint) {
        return Ok(target);
    }
    let fail = |message: String| PoolError::Generate {
        pool: pool.manifest.id.clone(),
        message,
    };
    let staging = target.with_extension(format!("staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| fail(e.to_string()))?;
    let generator = Generator::for_pool(&pool.manifest.id)
        .ok_or_else(|| fail("no generator for this pool".into()))?;
    let data = &pool.manifest.data;
    let mut rng = StdRng::seed_from_u64(data.seed);
    let per_file = data.rows.div_ceil(data.files);
    let mut written = 0;
    for file in 0..data.files {
        let rows = per_file.min(data.rows - written);
        let batch = generator
            .batch(&mut rng, written, rows)
            .map_err(|e| fail(e.to_string()))?;
        written += rows;
        let path = staging.join(format!("part-{file:05}.parquet"));
        let out = std::fs::File::create(&path).map_err(|e| fail(e.to_string()))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(32 * 1024))
            .build();
        let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(properties))
            .map_err(|e| fail(e.to_string()))?;
        writer.write(&batch).map_err(|e| fail(e.to_string()))?;
        let out = writer.into_inner().map_err(|e| fail(e.to_string()))?;
        out.sync_all().map_err(|e| fail(e.to_string()))?;
    }
    std::fs::write(staging.join("_SUCCESS"), &fingerprint).map_err(|e| fail(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&target);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
    }
    std::fs::rename(&staging, &target).map_err(|e| fail(e.to_string()))?;
    Ok(target)
}

/// The sector generators.
#[derive(Debug, Clone, Copy)]
enum Generator {
    Health,
    Mobility,
    Climate,
}

const CITIES: [(&str, f64, f64, &str); 6] = [
    ("Berlin", 52.52, 13.405, "DE"),
    ("Paris", 48.8566, 2.3522, "FR"),
    ("Madrid", 40.4168, -3.7038, "ES"),
    ("Amsterdam", 52.3676, 4.9041, "NL"),
    ("Warsaw", 52.2297, 21.0122, "PL"),
    ("Milan", 45.4642, 9.19, "IT"),
];

const DIAGNOSES: [(&str, &str); 10] = [
    ("E11.9", "IV"),
    ("I10", "IX"),
    ("J45.9", "X"),
    ("I25.1", "IX"),
    ("E78.5", "IV"),
    ("K21.9", "XI"),
    ("M54.5", "XIII"),
    ("F32.9", "V"),
    ("N18.3", "XIV"),
    ("C50.9", "II"),
];

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}
fn f64_field(name: &str) -> Field {
    Field::new(name, DataType::Float64, false)
}
fn i64_field(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}
fn timestamp(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, None),
        false,
    )
}
fn date(name: &str) -> Field {
    Field::new(name, DataType::Date32, false)
}

/// Days from 1970-01-01 to 2024-01-01.
const DAYS_2024: i32 = 19_723;
/// Milliseconds from 1970-01-01 to 2024-01-01.
const MILLIS_2024: i64 = 1_704_067_200_000;

impl Generator {
    fn for_pool(id: &str) -> Option<Self> {
        match id {
            "health" => Some(Self::Health),
            "mobility" => Some(Self::Mobility),
            "climate" => Some(Self::Climate),
            _ => None,
        }
    }

    fn schema(self) -> Schema {
        match self {
            Self::Health => Schema::new(vec![
                utf8("patient_id"),
                utf8("national_id"),
                utf8("name"),
                date("birth_date"),
                utf8("sex"),
                utf8("postcode"),
                date("admission_date"),
                utf8("icd10_code"),
                utf8("icd10_chapter"),
                f64_field("hba1c"),
                f64_field("ldl_cholesterol"),
                i64_field("systolic_bp"),
                Field::new("consent_secondary_use", DataType::Boolean, false),
                utf8("hospital"),
                utf8("country"),
            ]),
            Self::Mobility => Schema::new(vec![
                utf8("trip_id"),
                utf8("vehicle_id"),
                utf8("mode"),
                timestamp("start_time"),
                timestamp("end_time"),
                f64_field("origin_lat"),
                f64_field("origin_lon"),
                f64_field("dest_lat"),
                f64_field("dest_lon"),
                f64_field("distance_km"),
                i64_field("duration_s"),
                utf8("city"),
            ]),
            Self::Climate => Schema::new(vec![
                utf8("station_id"),
                utf8("station_name"),
                f64_field("lat"),
                f64_field("lon"),
                f64_field("elevation_m"),
                timestamp("observed_at"),
                f64_field("temperature_c"),
                f64_field("precipitation_mm"),
                f64_field("wind_speed_ms"),
                f64_field("wind_direction_deg"),
                f64_field("relative_humidity"),
                f64_field("pressure_hpa"),
                utf8("country"),
            ]),
        }
    }

    /// Rows `[first, first + rows)` of the pool.
    fn batch(
        self,
        rng: &mut StdRng,
        first: usize,
        rows: usize,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let columns = match self {
            Self::Health => health(rng, first, rows),
            Self::Mobility => mobility(rng, first, rows),
            Self::Climate => climate(rng, first, rows),
        };
        RecordBatch::try_new(Arc::new(self.schema()), columns)
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let factor = 10f64.powi(digits);
    (value * factor).round() / factor
}

/// A standard normal draw (Box–Muller), so no extra crate is needed.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn health(rng: &mut StdRng, first: usize, rows: usize) -> Vec<ArrayRef> {
    const GIVEN: [&str; 8] = [
        "Anna", "Jonas", "Marie", "Luca", "Sofia", "Mateo", "Emma", "Noah",
    ];
    const FAMILY: [&str; 8] = [
        "Schmidt", "Dubois", "Garcia", "Jansen", "Kowalski", "Rossi", "Muller", "Martin",
    ];
    let mut patient = StringBuilder::new();
    let mut national = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut birth = Date32Builder::new();
    let mut sex = StringBuilder::new();
    let mut postcode = StringBuilder::new();
    let mut admission = Date32Builder::new();
    let mut code = StringBuilder::new();
    let mut chapter = StringBuilder::new();
    let mut hba1c = Float64Builder::new();
    let mut ldl = Float64Builder::new();
    let mut systolic = Int64Builder::new();
    let mut consent = BooleanBuilder::new();
    let mut hospital = StringBuilder::new();
    let mut country = StringBuilder::new();
    for row in first..first + rows {
        let age_years: f64 = rng.gen_range(18.0..95.0);
        let (city, _, _, iso) = CITIES[rng.gen_range(0..CITIES.len())];
        let (icd, icd_chapter) = DIAGNOSES[rng.gen_range(0..DIAGNOSES.len())];
        let diabetic = icd.starts_with("E11");
        patient.append_value(format!("P{row:08}"));
        national.append_value(format!("{iso}{:010}", rng.gen_range(0..10_000_000_000u64)));
        name.append_value(format!(
            "{} {}",
            GIVEN[rng.gen_range(0..GIVEN.len())],
            FAMILY[rng.gen_range(0..FAMILY.len())]
        ));
        let admitted = DAYS_2024 + rng.gen_range(0..366);
        admission.append_value(admitted);
        birth.append_value(admitted - (age_years * 365.25) as i32);
        sex.append_value(if rng.gen_bool(0.5) { "F" } else { "M" });
        postcode.append_value(format!("{:05}", rng.gen_range(10_000..99_999)));
        code.append_value(icd);
        chapter.append_value(icd_chapter);
        let base_hba1c = if diabetic { 7.6 } else { 5.4 } + age_years * 0.008;
        hba1c.append_value(round(base_hba1c + 0.6 * normal(rng), 1));
        ldl.append_value(round(2.6 + age_years * 0.01 + 0.7 * normal(rng), 2));
        let bp =
            105.0 + age_years * 0.45 + if icd == "I10" { 18.0 } else { 0.0 } + 12.0 * normal(rng);
        systolic.append_value(bp.round() as i64);
        consent.append_value(rng.gen_bool(0.82));
        hospital.append_value(format!("{city} University Hospital"));
        country.append_value(iso);
    }
    vec![
        Arc::new(patient.finish()),
        Arc::new(national.finish()),
        Arc::new(name.finish()),
        Arc::new(birth.finish()),
        Arc::new(sex.finish()),
        Arc::new(postcode.finish()),
        Arc::new(admission.finish()),
        Arc::new(code.finish()),
        Arc::new(chapter.finish()),
        Arc::new(hba1c.finish()),
        Arc::new(ldl.finish()),
        Arc::new(systolic.finish()),
        Arc::new(consent.finish()),
        Arc::new(hospital.finish()),
        Arc::new(country.finish()),
    ]
}

fn mobility(rng: &mut StdRng, first: usize, rows: usize) -> Vec<ArrayRef> {
    // (mode, mean speed km/h, typical distance km)
    const MODES: [(&str, f64, f64); 6] = [
        ("walk", 4.8, 1.2),
        ("bike", 15.0, 4.0),
        ("scooter", 18.0, 2.5),
        ("bus", 19.0, 6.0),
        ("tram", 21.0, 5.0),
        ("car", 28.0, 11.0),
    ];
    let mut trip = StringBuilder::new();
    let mut vehicle = StringBuilder::new();
    let mut mode = StringBuilder::new();
    let mut start = TimestampMillisecondBuilder::new();
    let mut end = TimestampMillisecondBuilder::new();
    let mut origin_lat = Float64Builder::new();
    let mut origin_lon = Float64Builder::new();
    let mut dest_lat = Float64Builder::new();
    let mut dest_lon = Float64Builder::new();
    let mut distance = Float64Builder::new();
    let mut duration = Int64Builder::new();
    let mut city = StringBuilder::new();
    for row in first..first + rows {
        let (city_name, lat, lon, _) = CITIES[rng.gen_range(0..CITIES.len())];
        let (mode_name, speed, typical) = MODES[rng.gen_range(0..MODES.len())];
        let km = (typical * (0.35 * normal(rng)).exp()).max(0.2);
        let bearing: f64 = rng.gen_range(0.0..std::f64::consts::TAU);
        let o_lat = lat + 0.05 * normal(rng);
        let o_lon = lon + 0.08 * normal(rng);
        let d_lat = o_lat + km / 111.0 * bearing.cos();
        let d_lon = o_lon + km / (111.0 * o_lat.to_radians().cos()) * bearing.sin();
        // Rush hours slow road traffic down.
        let day_ms = rng.gen_range(0..366i64) * 86_400_000;
        let hour = rng.gen_range(5..23i64);
        let rush = matches!(hour, 7..=9 | 16..=18) && matches!(mode_name, "bus" | "car");
        let effective = speed * if rush { 0.65 } else { 1.0 } * (0.15 * normal(rng)).exp();
        let seconds = (km / effective * 3600.0).round() as i64;
        let begin = MILLIS_2024 + day_ms + hour * 3_600_000 + rng.gen_range(0..3_600_000);
        trip.append_value(format!("T{row:09}"));
        vehicle.append_value(format!(
            "{}-{:05}",
            &mode_name[..2].to_uppercase(),
            rng.gen_range(0..20_000)
        ));
        mode.append_value(mode_name);
        start.append_value(begin);
        end.append_value(begin + seconds * 1000);
        origin_lat.append_value(round(o_lat, 6));
        origin_lon.append_value(round(o_lon, 6));
        dest_lat.append_value(round(d_lat, 6));
        dest_lon.append_value(round(d_lon, 6));
        distance.append_value(round(km, 3));
        duration.append_value(seconds);
        city.append_value(city_name);
    }
    vec![
        Arc::new(trip.finish()),
        Arc::new(vehicle.finish()),
        Arc::new(mode.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(origin_lat.finish()),
        Arc::new(origin_lon.finish()),
        Arc::new(dest_lat.finish()),
        Arc::new(dest_lon.finish()),
        Arc::new(distance.finish()),
        Arc::new(duration.finish()),
        Arc::new(city.finish()),
    ]
}

fn climate(rng: &mut StdRng, first: usize, rows: usize) -> Vec<ArrayRef> {
    const STATIONS: usize = 120;
    let mut station_id = StringBuilder::new();
    let mut station_name = StringBuilder::new();
    let mut lat_b = Float64Builder::new();
    let mut lon_b = Float64Builder::new();
    let mut elevation_b = Float64Builder::new();
    let mut observed = TimestampMillisecondBuilder::new();
    let mut temperature = Float64Builder::new();
    let mut precipitation = Float64Builder::new();
    let mut wind_speed = Float64Builder::new();
    let mut wind_direction = Float64Builder::new();
    let mut humidity = Float64Builder::new();
    let mut pressure = Float64Builder::new();
    let mut country = StringBuilder::new();
    for row in first..first + rows {
        // Each station reports hourly; rows walk stations round-robin through time.
        let station = row % STATIONS;
        let hour = (row / STATIONS) as i64;
        let (city, city_lat, city_lon, iso) = CITIES[station % CITIES.len()];
        // Station geography is a pure function of its number, so it never drifts between files.
        let mut place = StdRng::seed_from_u64(station as u64);
        let lat = city_lat + place.gen_range(-1.5..1.5);
        let lon = city_lon + place.gen_range(-2.0..2.0);
        let elevation = place.gen_range(0.0..1800.0f64);
        let day_of_year = (hour / 24) as f64;
        let hour_of_day = (hour % 24) as f64;
        let seasonal = -10.0 * (2.0 * std::f64::consts::PI * (day_of_year + 10.0) / 365.25).cos();
        let diurnal = -4.0 * (2.0 * std::f64::consts::PI * (hour_of_day - 3.0) / 24.0).cos();
        let temp =
            11.0 + seasonal + diurnal - 0.0065 * elevation - 0.4 * (lat - 45.0) + 1.5 * normal(rng);
        let raining = rng.gen_bool(0.18);
        station_id.append_value(format!("ST{station:04}"));
        station_name.append_value(format!("{city} {station:03}"));
        lat_b.append_value(round(lat, 4));
        lon_b.append_value(round(lon, 4));
        elevation_b.append_value(round(elevation, 0));
        observed.append_value(MILLIS_2024 + hour * 3_600_000);
        temperature.append_value(round(temp, 1));
        precipitation.append_value(if raining {
            round(rng.gen_range(0.1..6.0f64).powf(1.3), 1)
        } else {
            0.0
        });
        wind_speed.append_value(round((3.5 + 2.0 * normal(rng)).abs(), 1));
        wind_direction.append_value(round(rng.gen_range(0.0..360.0), 0));
        humidity.append_value(round(
            (72.0 + if raining { 18.0 } else { 0.0 } + 10.0 * normal(rng)).clamp(5.0, 100.0),
            0,
        ));
        pressure.append_value(round(
            1013.0 - elevation * 0.12 + 6.0 * normal(rng) - if raining { 5.0 } else { 0.0 },
            1,
        ));
        country.append_value(iso);
    }
    vec![
        Arc::new(station_id.finish()),
        Arc::new(station_name.finish()),
        Arc::new(lat_b.finish()),
        Arc::new(lon_b.finish()),
        Arc::new(elevation_b.finish()),
        Arc::new(observed.finish()),
        Arc::new(temperature.finish()),
        Arc::new(precipitation.finish()),
        Arc::new(wind_speed.finish()),
        Arc::new(wind_direction.finish()),
        Arc::new(humidity.finish()),
        Arc::new(pressure.finish()),
        Arc::new(country.finish()),
    ]
}
