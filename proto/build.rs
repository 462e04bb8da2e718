//! Compiles proto/*.proto with protox (pure Rust; no protoc needed) into tonic + prost code.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/hdds.proto",
        "proto/datanode.proto",
        "proto/scm.proto",
        "proto/om.proto",
        "proto/raft.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".ozone.datanode")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
