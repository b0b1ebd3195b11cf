// swift-tools-version:6.1
import PackageDescription

// The agent ↔ control plane benchmark: fleets sharing a team limit by leases, revocation
// propagation, control-plane CPU per flush and flush size. A separate package so CI never
// builds it. Run it with bench/sync.sh.
let package = Package(
    name: "sluice-sync-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "sluice-root")],
    targets: [
        .executableTarget(
            name: "SyncBench",
            dependencies: [
                .product(name: "SluiceAgent", package: "sluice-root"),
                .product(name: "SluicePolicy", package: "sluice-root"),
                .product(name: "SluiceTestSupport", package: "sluice-root"),
            ],
            path: "Sources/SyncBench"
        )
    ],
    swiftLanguageModes: [.v6]
)
