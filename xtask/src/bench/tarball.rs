//! `cargo xtask bench tarball`: our package tarball stage against
//! `tar -cf - root site | pigz -6` and `tar -czf`, on a generated proto.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{
    file_size, measure, measure_shell, mib, on_path, print_row, scratch_dir, secs, self_command,
    shell_quote as q, verdict,
};

#[derive(clap::Args)]
pub struct Args {
    /// Size of the generated proto, in MiB.
    #[arg(long, default_value_t = 288)]
    size_mib: u64,
    /// Where to generate the proto and outputs (default: a temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: write the tarball of PROTO to OUT and exit.
    #[arg(long, hide = true, num_args = 2, value_names = ["PROTO", "OUT"])]
    worker: Option<Vec<PathBuf>>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(w) = args.worker {
        let done = zone_image::tarball::write(
            &w[0],
            &w[1],
            1_700_000_000,
            zone_image::compress::DEFAULT_LEVEL,
        )?;
        println!("{} {}", done.size, done.sha1);
        return Ok(());
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
    let gzip_out = dir.join("gzip.tar.gz");
    // Warm the page cache so the first contender is not penalised.
    measure_shell(&format!(
        "cd {} && tar -cf - root site > /dev/null",
        q(&proto)
    ))?;

    let ours = measure(
        self_command()?
            .args(["bench", "tarball", "--worker"])
            .arg(&proto)
            .arg(&ours_out),
    )?;
    let pigz = measure_shell(&format!(
        "cd {} && tar -cf - root site | pigz -6 > {}",
        q(&proto),
        q(&pigz_out)
    ))?;
    let gzip = measure_shell(&format!(
        "cd {} && tar -czf {} root site",
        q(&proto),
        q(&gzip_out)
    ))?;

    println!(
        "{:<28} {:>8.2}s  peak RSS {:>7.1} MiB",
        "ours (parallel gzip + sha1)",
        secs(ours.wall),
        ours.max_rss_kib as f64 / 1024.0
    );
    print_row("tar | pigz -6", &pigz, &ours);
    print_row("tar -czf", &gzip, &ours);
    let (so, sp, sg) = (
        file_size(&ours_out),
        file_size(&pigz_out),
        file_size(&gzip_out),
    );
    println!(
        "output: ours {:.1} MiB, pigz {:.1} MiB, gzip {:.1} MiB; ours/pigz size {:.4}",
        mib(so),
        mib(sp),
        mib(sg),
        so as f64 / sp as f64
    );
    let ratio = secs(ours.wall) / secs(pigz.wall);
    let size_ratio = so as f64 / sp as f64;
    let rss = ours.max_rss_kib as f64 / 1024.0;
    println!(
        "targets: time ratio vs pigz {ratio:.2} (<= 1.00: {}), size within 3% of pigz ({}), peak RSS {rss:.1} MiB (< 64: {})",
        verdict(ratio <= 1.0),
        verdict((size_ratio - 1.0).abs() <= 0.03),
        verdict(rss < 64.0)
    );
    Ok(())
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
