{
  description = "ikegw: userspace IKEv2/IPsec gateway joining Cilium Kubernetes clusters to on-prem IPsec gateways";

  # nodejs_20 must be >= 20.19 (package.json "engines"): nixos-25.05 or newer.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system nixpkgs.legacyPackages.${system};
          }) systems
        );

      packageJson = builtins.fromJSON (builtins.readFile ./package.json);
      inherit (packageJson) version;

      # package-lock.json is written with npm's omit-lockfile-registry-resolved, so its entries
      # carry "integrity" but no "resolved" URL, and importNpmLock fetches only entries with a
      # URL. Fill in the registry URL (<registry>/<name>/-/<basename>-<version>.tgz); the
      # integrity hash from the lock still pins every tarball, so no npmDepsHash is needed.
      registry = "https://registry.npmjs.org";
      withResolved =
        path: mod:
        if
          path == ""
          || mod ? resolved
          || (mod.link or false)
          || (mod.inBundle or false)
          || !(mod ? version)
          || !(mod ? integrity)
        then
          mod
        else
          let
            # "node_modules/a/node_modules/@scope/b" -> "@scope/b" (or the "name" of an alias)
            name = mod.name or (builtins.head (builtins.match ".*node_modules/(.+)" path));
            baseName = builtins.elemAt (builtins.match "(@[^/]+/)?(.+)" name) 1;
          in
          mod // { resolved = "${registry}/${name}/-/${baseName}-${mod.version}.tgz"; };
      packageLock =
        let
          lock = builtins.fromJSON (builtins.readFile ./package-lock.json);
        in
        lock // { packages = builtins.mapAttrs withResolved lock.packages; };
    in
    {
      packages = forAllSystems (
        system: pkgs:
        let
          inherit (pkgs) lib;

          ikegw = pkgs.buildNpmPackage {
            pname = "ikegw";
            inherit version;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./package.json
                ./package-lock.json
                ./tsconfig.json
                ./tsconfig.build.json
                ./src
                # our own N-API addon (TUN, raw ESP socket, batched send, in-place AEAD) for the
                # userspace ESP data path; built by package.json's "install" script with node-gyp
                ./native
              ];
            };
            nodejs = pkgs.nodejs_20;

            # Dependencies straight from package-lock.json (no npmDepsHash to maintain).
            npmDeps = pkgs.importNpmLock {
              package = packageJson;
              inherit packageLock;
            };
            npmConfigHook = pkgs.importNpmLock.npmConfigHook;

            # The native addons (npm "netlink", and ours in native/) are compiled from source
            # against nixpkgs' toolchain (stdenv's cc; node-gyp needs python3 and make).
            nativeBuildInputs = [ pkgs.python3 pkgs.gnumake ];
            npm_config_build_from_source = "true";

            # `npm run build` = tsc -p tsconfig.build.json -> dist/ (package.json "files").
            npmBuildScript = "build";

            # The test suites need network namespaces, root and strongSwan: not in the sandbox.
            doCheck = false;

            meta = {
              description = packageJson.description;
              license = lib.licenses.asl20;
              mainProgram = "ikegw";
              platforms = lib.platforms.linux;
            };
          };

          # Users for the image: root (the frontend's daemon and routes containers run as uid 0
          # with only the capabilities the chart adds) and nonroot (the operator; the default).
          passwd = pkgs.writeTextDir "etc/passwd" ''
            root:x:0:0:root:/root:/sbin/nologin
            nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
          '';
          group = pkgs.writeTextDir "etc/group" ''
            root:x:0:
            nonroot:x:65532:
          '';

          # `nix build .#image` -> ./result, a docker-archive tarball (docker load / skopeo copy).
          image = pkgs.dockerTools.buildLayeredImage {
            name = "ikegw";
            tag = version;
            contents = [
              passwd
              group
              # nsenter: the routes sidecar reaches the node's network namespace through it
              # (src/routes/rtnetlink.ts starts `nsenter --net=<path> -- node ...`)
              pkgs.util-linux
            ];
            extraCommands = ''
              mkdir -p tmp
              chmod 1777 tmp
            '';
            config = {
              Entrypoint = [ "${ikegw}/bin/ikegw" ];
              User = "65532:65532";
              WorkingDir = "/";
              Env = [
                "NODE_ENV=production"
                "PATH=/bin"
              ];
              ExposedPorts = {
                "500/udp" = { };
                "4500/udp" = { };
                "9500/tcp" = { };
              };
              Labels = {
                "org.opencontainers.image.title" = "ikegw";
                "org.opencontainers.image.version" = version;
                "org.opencontainers.image.licenses" = "Apache-2.0";
              };
            };
          };
        in
        {
          inherit ikegw image;
          default = ikegw;
        }
      );

      devShells = forAllSystems (
        system: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.nodejs_20
              pkgs.strongswan
              pkgs.iproute2
              pkgs.nftables
              pkgs.tcpdump
              # test/helm renders the chart with a real helm when one is on PATH
              pkgs.kubernetes-helm
              pkgs.kubectl
            ];
          };
        }
      );

      checks = forAllSystems (system: pkgs: { ikegw = self.packages.${system}.ikegw; });
    };
}
