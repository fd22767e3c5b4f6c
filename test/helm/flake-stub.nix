# Evaluates ../../flake.nix against a stub nixpkgs (no network, no store writes) and returns a
# JSON-able summary for test/helm/flake.test.ts. The stub has only the attributes the flake is
# expected to use; a typo in an attribute name fails the evaluation. It cannot show that
# nixpkgs itself behaves as assumed: that needs a real `nix build`.
{ flakePath }:
let
  flake = import flakePath;

  stubPkgs =
    system:
    let
      drv = name: attrs: attrs // {
        type = "derivation";
        inherit name;
        outPath = "/nix/store/00000000000000000000000000000000-${name}";
      };
      tool = name: drv name { };
    in
    {
      lib = {
        fileset = {
          toSource = { root, fileset }: { _src = fileset; _root = root; };
          unions = xs: xs;
        };
        licenses.asl20 = "asl20";
        platforms.linux = [ system ];
      };
      buildNpmPackage = args: drv "${args.pname}-${args.version}" { _args = args; };
      importNpmLock = {
        __functor = _self: args: drv "npm-deps" { _args = args; };
        # made for the default nodejs; the flake makes its own for nodejs_24 (below)
        npmConfigHook = tool "npm-config-hook-default-nodejs";
      };
      path = "/nixpkgs";
      # Only importNpmLock's hooks are built this way; records the nodejs and where from.
      callPackages = fn: args: {
        npmConfigHook = drv "npm-config-hook-${args.nodejs.name}" { _from = toString fn; };
      };
      dockerTools.buildLayeredImage = args: drv "image-${args.name}" { _args = args; };
      writeTextDir = path: text: drv "text-${baseNameOf path}" { _path = path; _text = text; };
      mkShell = args: drv "shell" { _args = args; };
      nodejs_24 = tool "nodejs-24";
      python3 = tool "python3";
      gnumake = tool "gnumake";
      util-linux = tool "util-linux";
      strongswan = tool "strongswan";
      iproute2 = tool "iproute2";
      nftables = tool "nftables";
      tcpdump = tool "tcpdump";
      kubernetes-helm = tool "kubernetes-helm";
      kubectl = tool "kubectl";
    };

  nixpkgs = {
    legacyPackages = {
      x86_64-linux = stubPkgs "x86_64-linux";
      aarch64-linux = stubPkgs "aarch64-linux";
    };
  };

  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
  };

  sys = "x86_64-linux";
  pkg = outputs.packages.${sys}.default._args;
  deps = pkg.npmDeps._args;
  img = outputs.packages.${sys}.image._args;
  shell = outputs.devShells.${sys}.default._args;
in
{
  description = flake.description;
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  systems = builtins.attrNames outputs.packages;
  packages = builtins.attrNames outputs.packages.${sys};
  devShellSystems = builtins.attrNames outputs.devShells;
  checks = builtins.attrNames outputs.checks.${sys};
  package = {
    inherit (pkg)
      pname
      version
      npmBuildScript
      npm_config_build_from_source
      doCheck
      postBuild
      postInstall
      ;
    nodejs = pkg.nodejs.name;
    npmConfigHook = pkg.npmConfigHook.name;
    npmConfigHookFrom = pkg.npmConfigHook._from or "";
    nativeBuildInputs = map (d: d.name) pkg.nativeBuildInputs;
    mainProgram = pkg.meta.mainProgram;
    srcHasNodeModules = builtins.any (p: baseNameOf (toString p) == "node_modules") pkg.src._src;
    # paths relative to the flake's root (scripts/bundle.mjs, not bundle.mjs)
    srcFiles = map (p: builtins.substring (builtins.stringLength (toString pkg.src._root) + 1) (-1) (toString p)) pkg.src._src;
  };
  npmDeps = {
    packageName = deps.package.name;
    packageDevDependencies = deps.package.devDependencies;
    lockPackages = deps.packageLock.packages;
  };
  image = {
    inherit (img) name tag;
    inherit (img.config)
      Entrypoint
      User
      ExposedPorts
      Env
      Labels
      ;
    contents = map (d: d._text or d.name) img.contents;
    extraCommands = img.extraCommands;
  };
  devShell = map (d: d.name) shell.packages;
}
