// swift-tools-version:6.1
import PackageDescription

// The control plane's benchmark: usage ingest, bundle build and usage queries on SQLite
// and PostgreSQL. A separate package so CI never builds it. Run it with bench/control.sh.
let package = Package(
    name: "sluice-control-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "sluice-root")],
    targets: [
        .executableTarget(
            name: "ControlBench",
            dependencies: [
                .product(name: "SluiceControl", package: "sluice-root"),
                .product(name: "SluiceTestSupport", package: "sluice-root"),
            ],
            path: "Sources/ControlBench"
        ),
    ],
    swiftLanguageModes: [.v6]
)
