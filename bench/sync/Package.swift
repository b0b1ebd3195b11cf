// swift-tools-version:6.1
import PackageDescription

// The agent ↔ control plane benchmarks: fleets sharing a team limit by leases, revocation
// propagation, control-plane CPU per flush and flush size (SyncBench, bench/sync.sh), and
// thousands of simulated agents on one control plane (FleetSim, bench/fleet.sh). A separate
// package so CI never builds it.
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
        ),
        .executableTarget(
            name: "FleetSim",
            dependencies: [
                .product(name: "SluiceAgent", package: "sluice-root"),
                .product(name: "SluicePolicy", package: "sluice-root"),
                .product(name: "SluiceTestSupport", package: "sluice-root"),
            ],
            path: "Sources/FleetSim"
        ),
    ],
    swiftLanguageModes: [.v6]
)
