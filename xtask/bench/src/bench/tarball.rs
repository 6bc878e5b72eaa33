//! `cargo xtask bench tarball`: our package tarball stage against
//! `tar -cf - root site | pigz -6`, on a generated proto; both tarballs are
//! then read back and must hold the same entries with the same contents.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{
    MIN_ROUNDS, Report, Target, file_size, measure, measure_shell, mib, on_path, rounds,
    scratch_dir, self_command, sha1_of, shell_quote as q,
};

/// The targets: time and size against `tar | pigz -6`.
const MAX_TIME_RATIO: f64 = 0.35;
const MAX_SIZE_RATIO: f64 = 1.01;

#[derive(clap::Args)]
pub struct Args {
    /// Size of the generated proto, in MiB.
    #[arg(long, default_value_t = 288)]
    size_mib: u64,
    /// Where to generate the proto and outputs (default: a temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rounds per side (at least 3), alternating which goes first.
    #[arg(long, default_value_t = MIN_ROUNDS)]
    rounds: u32,
    /// Internal: write the tarball of PROTO to OUT and exit.
    #[arg(long, hide = true, num_args = 2, value_names = ["PROTO", "OUT"])]
    worker: Option<Vec<PathBuf>>,
}

impl Args {
    pub fn new(size_mib: Option<u64>, rounds: u32) -> Args {
        Args {
            size_mib: size_mib.unwrap_or(288),
            dir: None,
            rounds,
            worker: None,
        }
    }
}

pub fn run(args: Args) -> Result<Option<Report>> {
    if let Some(w) = args.worker {
        let done = zone_image::tarball::write(
            &w[0],
            &w[1],
            1_700_000_000,
            zone_image::compress::DEFAULT_LEVEL,
        )?;
        println!("{} {}", done.size, done.sha1);
        return Ok(None);
    }
    let (_tmp, dir) = scratch_dir("bench-tarball-", args.dir.as_deref())?;
    for tool in ["pigz", "tar"] {
        if !on_path(tool) {
            bail!("{tool} is not installed (apt-get install {tool})");
        }
    }
    let proto = dir.join("proto");
    let total = generate_proto(&proto, args.size_mib << 20)?;
    println!(
        "proto: {:.0} MiB in {} files under {}",
        mib(total.0),
        total.1,
        proto.display()
    );

    let ours_out = dir.join("ours.tar.gz");
    let pigz_out = dir.join("pigz.tar.gz");
    // Warm the page cache so the first contender is not penalised.
    measure_shell(&format!(
        "cd {} && tar -cf - root site > /dev/null",
        q(&proto)
    ))?;

    let series = rounds(
        args.rounds,
        &["ours (parallel gzip + sha1)", "tar | pigz -6"],
        |side, _| match side {
            0 => measure(
                self_command()?
                    .args(["bench", "tarball", "--worker"])
                    .arg(&proto)
                    .arg(&ours_out)
                    .stdout(std::process::Stdio::null()),
            ),
            _ => measure_shell(&format!(
                "cd {} && tar -cf - root site | pigz -6 > {}",
                q(&proto),
                q(&pigz_out)
            )),
        },
    )?;

    let ours_entries = entries(&ours_out)?;
    let pigz_entries = entries(&pigz_out)?;
    if ours_entries != pigz_entries {
        let only_ours = ours_entries
            .iter()
            .find(|(k, v)| pigz_entries.get(*k) != Some(*v))
            .map(|(k, _)| k.clone());
        let only_pigz = pigz_entries
            .iter()
            .find(|(k, v)| ours_entries.get(*k) != Some(*v))
            .map(|(k, _)| k.clone());
        bail!(
            "the tarballs differ: first entry of ours not matched by pigz's: {only_ours:?}; of pigz's not matched by ours: {only_pigz:?}"
        );
    }
    let (so, sp) = (file_size(&ours_out), file_size(&pigz_out));
    let mut report = Report {
        bench: "tarball",
        input: format!("{:.0} MiB proto, {} files", mib(total.0), total.1),
        series,
        targets: Vec::new(),
        sizes: vec![("ours".into(), so), ("pigz".into(), sp)],
        equivalence: format!(
            "same {} entries (paths, kinds, link targets) and file contents (sha1 of each)",
            ours_entries.len()
        ),
    };
    report.targets = vec![
        Target::at_most("time ours/pigz (medians)", report.ratio(1), MAX_TIME_RATIO),
        Target::at_most("size ours/pigz", so as f64 / sp as f64, MAX_SIZE_RATIO),
    ];
    Ok(Some(report))
}

/// Every entry of a tar.gz (all gzip members): path to kind plus content
/// sha1 or link target. Modes and owners are left out: ours sets them
/// explicitly, tar copies the disk's.
fn entries(path: &Path) -> Result<BTreeMap<String, String>> {
    let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
    let mut ar = tar::Archive::new(gz);
    let mut out = BTreeMap::new();
    for e in ar
        .entries()
        .with_context(|| format!("reading {}", path.display()))?
    {
        let mut e = e.with_context(|| format!("reading {}", path.display()))?;
        let name = e
            .path()
            .with_context(|| format!("reading {}", path.display()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let kind = e.header().entry_type();
        let what = if kind.is_file() {
            let (n, sha1) = sha1_of(&mut e).with_context(|| format!("reading {name}"))?;
            format!("file {n} {sha1}")
        } else if kind.is_dir() {
            "dir".to_string()
        } else {
            let target = e
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut rest = Vec::new();
            e.read_to_end(&mut rest)?;
            format!("{kind:?} {target}")
        };
        out.insert(name, what);
    }
    Ok(out)
}

/// A proto of about `target` bytes: large real ELF binaries and libraries
/// from this machine (realistic compressibility), then thousands of small
/// text files. Returns (bytes, files).
fn generate_proto(proto: &Path, target: u64) -> Result<(u64, u64)> {
    if proto.exists() {
        fs::remove_dir_all(proto).with_context(|| format!("removing {}", proto.display()))?;
    }
    let bin_dir = proto.join("root/opt/smartdc/bench/bin");
    let lib_dir = proto.join("root/opt/smartdc/bench/lib");
    fs::create_dir_all(&bin_dir)?;
    fs::create_dir_all(&lib_dir)?;
    fs::create_dir_all(proto.join("site"))?;
    fs::write(proto.join("site/.do-not-delete-me"), b"")?;

    let mut bytes = 0u64;
    let mut files = 1u64;
    let small_budget = target / 5;
    let mut sources: Vec<PathBuf> = Vec::new();
    for dir in [
        "/usr/bin",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/libexec",
        "/usr/lib/gcc/x86_64-linux-gnu/12",
    ] {
        let Ok(rd) = fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if let Ok(m) = fs::symlink_metadata(&p)
                && m.is_file()
                && m.len() > 256 * 1024
            {
                sources.push(p);
            }
        }
    }
    sources.sort();
    if sources.is_empty() {
        bail!("no binaries found under /usr to build a realistic proto from");
    }
    // Pack real binaries into a few large files, as service binaries are.
    let mut i = 0;
    let mut n = 0;
    while bytes < target - small_budget {
        let out = bin_dir.join(format!("service-{n}"));
        let mut f = fs::File::create(&out)?;
        let mut this = 0u64;
        while this < 48 << 20 && bytes < target - small_budget {
            let mut src = fs::File::open(&sources[i % sources.len()])?;
            i += 1;
            let n = std::io::copy(&mut src, &mut f)?;
            this += n;
            bytes += n;
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&out, fs::Permissions::from_mode(0o755))?;
        files += 1;
        n += 1;
    }
    // Thousands of small text files, like node_modules or man pages.
    let words = [
        "triton", "zone", "image", "manifest", "origin", "service", "config", "agent", "smartos",
        "dataset", "snapshot", "upload", "the", "and", "of", "to",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut k = 0u64;
    while bytes < target {
        let sub = lib_dir.join(format!("m{:03}", k / 100));
        if k.is_multiple_of(100) {
            fs::create_dir_all(&sub)?;
        }
        let mut text = String::new();
        let len = 2_000 + (seed % 30_000) as usize;
        while text.len() < len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push_str(words[(seed % words.len() as u64) as usize]);
            text.push(if seed.is_multiple_of(11) { '\n' } else { ' ' });
            if seed.is_multiple_of(97) {
                text.push_str(&format!("{seed:x}"));
            }
        }
        fs::write(sub.join(format!("f{k}.js")), &text)?;
        bytes += text.len() as u64;
        files += 1;
        k += 1;
    }
    Ok((bytes, files))
}
