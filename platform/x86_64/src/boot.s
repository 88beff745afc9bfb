/* libos x86_64 entry (AT&T syntax), included by src/boot.rs with global_asm!.
 *
 * A PVH loader enters `_start32` in 32-bit protected mode, paging off, with %ebx holding the
 * physical address of `struct hvm_start_info`. We record the TSC (boot statistics), zero .bss,
 * identity-map the first GiB with 2 MiB pages (enough for the image, the loader's start_info
 * and the frames the final page tables are built in), enter long mode and call
 * `libos_x86_64_start(start_info)`, the Rust entry that libos defines with `entry_point!`.
 * The Rust side replaces these early page tables with the final ones (src/paging.rs). */

/* ---- PVH entry note: XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen", 32-bit entry address. ---- */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                     /* namesz */
    .long 4                     /* descsz */
    .long 18                    /* type: XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long _start32
    .long 0                     /* padding: QEMU reads the entry as a 64-bit value */

/* ---- Early page tables and GDT ---- */
    .section .bss.boot_tables, "aw", @nobits
    .balign 4096
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096

    .section .rodata.boot_gdt, "a"
    .balign 16
boot_gdt:
    .quad 0                     /* null */
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data, DPL 0 */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .data.boot_entry_tsc, "aw"
    .balign 8
    .global libos_x86_64_entry_tsc
libos_x86_64_entry_tsc:
    .quad 0

/* ---- Stacks, each with an unmapped 4 KiB guard page below it (see paging.rs) ---- */
    .section .stacks, "aw", @nobits
    .balign 4096
    .global libos_x86_64_stacks_start
libos_x86_64_stacks_start:
    .global libos_x86_64_boot_stack_guard
libos_x86_64_boot_stack_guard:      .skip 4096
libos_x86_64_boot_stack_bottom:     .skip 65536
    .global libos_x86_64_boot_stack_top
libos_x86_64_boot_stack_top:
    .global libos_x86_64_double_fault_stack_guard
libos_x86_64_double_fault_stack_guard: .skip 4096
                                    .skip 16384
    .global libos_x86_64_double_fault_stack_top
libos_x86_64_double_fault_stack_top:
    .global libos_x86_64_fault_stack_guard
libos_x86_64_fault_stack_guard:     .skip 4096
                                    .skip 32768
    .global libos_x86_64_fault_stack_top
libos_x86_64_fault_stack_top:
    .global libos_x86_64_nmi_stack_guard
libos_x86_64_nmi_stack_guard:       .skip 4096
                                    .skip 8192
    .global libos_x86_64_nmi_stack_top
libos_x86_64_nmi_stack_top:
    .global libos_x86_64_interrupt_stack_guard
libos_x86_64_interrupt_stack_guard: .skip 4096
                                    .skip 16384
    .global libos_x86_64_interrupt_stack_top
libos_x86_64_interrupt_stack_top:
    .global libos_x86_64_stacks_end
libos_x86_64_stacks_end:

/* ---- 32-bit entry ---- */
    .section .text.boot, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    rdtsc
    movl %eax, libos_x86_64_entry_tsc
    movl %edx, libos_x86_64_entry_tsc + 4
    movl %ebx, %esi                     /* keep start_info across rep stos */

    /* Zero .bss (it holds the early page tables). */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    /* PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] -> 2 MiB page i (present, writable, large). */
    movl $boot_pdpt + 0x3, boot_pml4
    movl $boot_pd + 0x3, boot_pdpt
    xorl %ecx, %ecx
    movl $0x83, %eax
1:  movl %eax, boot_pd(,%ecx,8)
    addl $0x200000, %eax
    incl %ecx
    cmpl $512, %ecx
    jne 1b

    /* CR4.PAE, CR3, EFER.LME, then CR0.PG|WP|PE: long mode (compatibility sub-mode). */
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $start64

/* ---- 64-bit entry ---- */
    .code64
start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq $libos_x86_64_boot_stack_top, %rsp
    xorl %ebp, %ebp                     /* ends the frame-pointer chain for backtraces */
    movl %esi, %edi                     /* arg 0: start_info physical address */
    call libos_x86_64_start
2:  cli
    hlt
    jmp 2b

/* ---- Interrupt and exception stubs ----
 * One 16-byte stub per vector at libos_x86_64_trap_stubs + 16 * vector. Each pushes a dummy
 * error code when the CPU does not push one, then the vector number, so every trap reaches
 * trap_common with the same frame layout (src/interrupts.rs: TrapFrame). Every vector has an
 * IST stack (src/interrupts.rs), so the CPU's own frame and this one are never written onto the
 * interrupted code's stack, whose 128-byte red zone may hold live data (compiled C code). */
    .section .text.traps, "ax"
    .balign 16
    .global libos_x86_64_trap_stubs
libos_x86_64_trap_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    .if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    pushq $0
    .endif
    pushq $vector
    jmp trap_common
    .set vector, vector + 1
    .endr

trap_common:
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %r11
    pushq %r10
    pushq %r9
    pushq %r8
    pushq %rbp
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rbx
    pushq %rax
    movq %rsp, %rdi
    cld
    call libos_x86_64_trap
    popq %rax
    popq %rbx
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rbp
    popq %r8
    popq %r9
    popq %r10
    popq %r11
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    addq $16, %rsp                      /* vector and error code */
    iretq
