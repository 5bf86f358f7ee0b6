//! The x86_64 system call names checked against the kernel's own numbering, as this machine's
//! kernel headers give it (`asm/unistd_64.h`, from the Debian package linux-libc-dev).

use cellwarden_source::syscall::syscall_name;

const HEADERS: [&str; 2] = [
    "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    "/usr/include/asm/unistd_64.h",
];

#[test]
fn x86_64_names_are_the_kernels() {
    let Some(text) = HEADERS.iter().find_map(|p| std::fs::read_to_string(p).ok()) else {
        cellwarden_testkit::skip(
            "the kernel's asm/unistd_64.h is not installed",
            "apt-get install linux-libc-dev",
        );
        return;
    };
    let mut checked = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("#define __NR_") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(nr)) = (parts.next(), parts.next().and_then(|n| n.parse().ok()))
        else {
            continue;
        };
        // Every number the header names, up to what our table holds, has that name.
        if let Some(ours) = syscall_name("x86_64", nr) {
            assert_eq!(ours, name, "x86_64 system call {nr}");
            checked += 1;
        } else {
            assert!(
                nr > 334,
                "x86_64 system call {nr} ({name}) has no name in our table"
            );
        }
    }
    assert!(checked > 300, "{checked} names checked");
}
