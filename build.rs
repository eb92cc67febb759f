// Files compiled into the binary with include_dir!: rebuild when they change.
fn main() {
    for dir in ["examples", "locales", "mail-templates", "web-templates", "web-static", "migrations"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
